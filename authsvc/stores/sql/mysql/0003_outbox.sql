-- The outbox (stores/outbox.py): mail (and later webhooks) recorded in the transaction
-- of the state it reports, delivered by the serving processes. message holds the whole
-- rendered mail (as sent: ASCII, CRLF) until it is sent, then NULL (it carries a
-- single-use link). Every time
-- is the database's clock (UTC).
CREATE TABLE outbox (
    id CHAR(32) CHARACTER SET ascii NOT NULL,
    channel VARCHAR(16) CHARACTER SET ascii NOT NULL,
    kind VARCHAR(64) CHARACTER SET ascii NOT NULL,
    recipient VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    message MEDIUMTEXT CHARACTER SET utf8mb4 NULL,
    state VARCHAR(16) CHARACTER SET ascii NOT NULL,
    attempts INT NOT NULL,
    claim_fence BIGINT NOT NULL,
    next_attempt_at DATETIME(3) NOT NULL,
    last_error VARCHAR(500) CHARACTER SET utf8mb4 NULL,
    created_at DATETIME(3) NOT NULL,
    sent_at DATETIME(3) NULL,
    PRIMARY KEY (id),
    KEY outbox_due (channel, state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
