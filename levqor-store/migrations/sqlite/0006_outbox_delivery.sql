-- The outbox becomes the dispatcher's queue: each message's delivery state, the lease of the
-- dispatcher sending it, and every attempt with the provider's answer.

ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown'));
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN lease_token BLOB;
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN sent_at INTEGER;
ALTER TABLE outbox ADD COLUMN provider_message_id TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
UPDATE outbox SET next_attempt_at = created_at;

-- What a dispatcher's claim scans: only messages still to deliver.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status IN ('pending', 'sending');

CREATE TABLE outbox_attempts (
    message_id  BLOB NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    node        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    answer      TEXT NOT NULL,
    PRIMARY KEY (message_id, number)
);
