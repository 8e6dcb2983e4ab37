-- The outbox (stores/outbox.py): mail recorded in the transaction of the state it
-- reports, delivered by the serving processes. message holds the whole rendered mail
-- until it is sent, then NULL. Times are epoch milliseconds of SQLite's clock.
CREATE TABLE outbox (
    id TEXT NOT NULL PRIMARY KEY,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    claim_fence INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox (channel, state, next_attempt_at)
