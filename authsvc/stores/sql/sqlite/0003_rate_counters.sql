-- Rate-limit counters of the embedded store (Redis keeps them as expiring keys).
CREATE TABLE rate_counters (
    key TEXT NOT NULL PRIMARY KEY,
    count INTEGER NOT NULL,
    resets_at INTEGER NOT NULL
)
