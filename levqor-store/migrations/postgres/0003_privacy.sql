-- Consent, privacy and screening: uuid ids, timestamptz instants, jsonb documents, as in 0001.
-- Nothing here holds a secret in clear: tokens are SHA-256 hashes. Ledger details are text, not
-- jsonb, so that the bytes that were hashed are the bytes that are kept.

CREATE TABLE settings (
    key   text PRIMARY KEY NOT NULL,
    value jsonb NOT NULL
);

CREATE TABLE terms_versions (
    version      text PRIMARY KEY NOT NULL,
    effective_at timestamptz NOT NULL,
    changelog    text NOT NULL,
    material     boolean NOT NULL,
    published_at timestamptz NOT NULL
);

CREATE TABLE terms_acceptances (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    version     text NOT NULL,
    accepted_at timestamptz NOT NULL,
    ip          text,
    user_agent  text
);
CREATE INDEX terms_acceptances_by_user ON terms_acceptances (user_id, id);

CREATE TABLE marketing_subscriptions (
    id               uuid PRIMARY KEY,
    email            text NOT NULL UNIQUE,
    status           text NOT NULL CHECK (status IN ('pending', 'subscribed', 'unsubscribed')),
    categories       jsonb NOT NULL,
    token_hash       text UNIQUE,
    token_expires_at timestamptz,
    token_used_at    timestamptz,
    last_sent_at     timestamptz,
    confirmed_at     timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE objections (
    user_id    uuid NOT NULL,
    kind       text NOT NULL,
    objected   boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- The only link from a ledger subject to a user; erasure deletes it.
CREATE TABLE consent_subjects (
    user_id uuid PRIMARY KEY,
    subject uuid NOT NULL UNIQUE
);

CREATE TABLE consent_ledger (
    seq       bigint PRIMARY KEY,
    id        uuid NOT NULL,
    at        timestamptz NOT NULL,
    subject   uuid NOT NULL,
    action    text NOT NULL,
    detail    text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL
);

-- One row: the position and hash of the last record. Appending updates it first, which
-- serializes appends.
CREATE TABLE consent_ledger_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO consent_ledger_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    id      uuid PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    subject text,
    detail  jsonb NOT NULL
);
CREATE INDEX audit_by_action ON audit_log (action, subject);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TABLE events (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    name       text NOT NULL,
    properties jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX events_by_user ON events (user_id, id);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE exports (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL,
    bytes      bigint NOT NULL,
    areas      jsonb NOT NULL
);
CREATE INDEX exports_by_user ON exports (user_id, id);

CREATE TABLE legal_holds (
    user_id    uuid PRIMARY KEY,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE screenings (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    verdict       text NOT NULL,
    screening     jsonb NOT NULL,
    request       jsonb,
    appeal_status text CHECK (appeal_status IN ('pending', 'approved', 'denied')),
    appeal_reason text,
    decision_note text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX screenings_by_user ON screenings (user_id, id);

ALTER TABLE outbox ADD COLUMN kind text NOT NULL DEFAULT 'transactional';
ALTER TABLE outbox ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
CREATE INDEX outbox_by_recipient ON outbox (to_addr);
CREATE INDEX outbox_by_time ON outbox (created_at);
