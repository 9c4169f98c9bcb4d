-- Addresses that bounced for good or complained: no marketing email goes to them.
CREATE TABLE suppressions (
    id         BLOB PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    reason     TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint')),
    detail     TEXT,
    event_id   TEXT,
    created_at INTEGER NOT NULL
);
