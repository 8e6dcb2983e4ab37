-- Refresh token rotation: the parent of the current token and when it was replaced.
ALTER TABLE sessions ADD COLUMN parent_jti_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN rotated_at INTEGER NOT NULL DEFAULT 0
