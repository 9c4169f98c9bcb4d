-- Addresses that bounced for good or complained: no marketing email goes to them.
CREATE TABLE suppressions (
    id         uuid PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    reason     text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint')),
    detail     text,
    event_id   text,
    created_at timestamptz NOT NULL
);
