-- The outbox becomes the dispatcher's queue: each message's delivery state, the lease of the
-- dispatcher sending it, and every attempt with the provider's answer.

ALTER TABLE outbox
    ADD COLUMN status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN lease_token uuid,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN sent_at timestamptz,
    ADD COLUMN provider_message_id text,
    ADD COLUMN last_error text;
UPDATE outbox SET next_attempt_at = created_at;
ALTER TABLE outbox ALTER COLUMN next_attempt_at SET NOT NULL;

-- What a dispatcher's claim scans: only messages still to deliver.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status IN ('pending', 'sending');

CREATE TABLE outbox_attempts (
    message_id  uuid NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    number      integer NOT NULL,
    node        text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome     text NOT NULL,
    answer      text NOT NULL,
    PRIMARY KEY (message_id, number)
);
