-- Revocation epochs (SessionStore.epoch): a session made under an older epoch of its
-- user is revoked. Sessions made before this migration are of epoch 0.
ALTER TABLE sessions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
CREATE TABLE revocation_epochs (
    user_id TEXT NOT NULL PRIMARY KEY,
    epoch INTEGER NOT NULL
)
