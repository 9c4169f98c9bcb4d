-- Consent, privacy and screening. Ids are UUID blobs, instants INTEGER microseconds, JSON TEXT,
-- as in 0001. Nothing here holds a secret in clear: tokens are SHA-256 hashes.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE terms_versions (
    version      TEXT PRIMARY KEY NOT NULL,
    effective_at INTEGER NOT NULL,
    changelog    TEXT NOT NULL,
    material     INTEGER NOT NULL,
    published_at INTEGER NOT NULL
);

CREATE TABLE terms_acceptances (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL,
    version     TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX terms_acceptances_by_user ON terms_acceptances (user_id, id);

CREATE TABLE marketing_subscriptions (
    id               BLOB PRIMARY KEY NOT NULL,
    email            TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'subscribed', 'unsubscribed')),
    categories       TEXT NOT NULL,
    token_hash       TEXT UNIQUE,
    token_expires_at INTEGER,
    token_used_at    INTEGER,
    last_sent_at     INTEGER,
    confirmed_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE objections (
    user_id    BLOB NOT NULL,
    kind       TEXT NOT NULL,
    objected   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
) WITHOUT ROWID;

-- The only link from a ledger subject to a user; erasure deletes it.
CREATE TABLE consent_subjects (
    user_id BLOB PRIMARY KEY NOT NULL,
    subject BLOB NOT NULL UNIQUE
);

CREATE TABLE consent_ledger (
    seq       INTEGER PRIMARY KEY NOT NULL,
    id        BLOB NOT NULL,
    at        INTEGER NOT NULL,
    subject   BLOB NOT NULL,
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- One row: the position and hash of the last record. Appending updates it first, which
-- serializes appends.
CREATE TABLE consent_ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO consent_ledger_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    id      BLOB PRIMARY KEY NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_by_action ON audit_log (action, subject);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TABLE events (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL,
    name       TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_user ON events (user_id, id);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE exports (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    areas      TEXT NOT NULL
);
CREATE INDEX exports_by_user ON exports (user_id, id);

CREATE TABLE legal_holds (
    user_id    BLOB PRIMARY KEY NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE screenings (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL,
    verdict       TEXT NOT NULL,
    screening     TEXT NOT NULL,
    request       TEXT,
    appeal_status TEXT CHECK (appeal_status IN ('pending', 'approved', 'denied')),
    appeal_reason TEXT,
    decision_note TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX screenings_by_user ON screenings (user_id, id);

ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'transactional';
ALTER TABLE outbox ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
CREATE INDEX outbox_by_recipient ON outbox (to_addr);
CREATE INDEX outbox_by_time ON outbox (created_at);
