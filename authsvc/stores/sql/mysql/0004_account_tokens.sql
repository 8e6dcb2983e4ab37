-- Single-use tokens of the account flows (core/lifecycle.py): email confirmation,
-- password reset, email change. Only the SHA-256 of a token is kept: a copy of this
-- table lets nobody confirm, reset or change anything. email is the address the token
-- was sent to (for an email change: the new one), and a token is good only while the
-- account still has the address it was sent for.
CREATE TABLE account_tokens (
    token_hash CHAR(64) CHARACTER SET ascii NOT NULL,
    purpose VARCHAR(32) CHARACTER SET ascii NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii NOT NULL,
    email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(3) NOT NULL,
    expires_at DATETIME(3) NOT NULL,
    PRIMARY KEY (token_hash),
    KEY account_tokens_user (user_id, purpose),
    KEY account_tokens_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
