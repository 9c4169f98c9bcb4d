-- Levqor on SQLite.
--
-- Ids are 16-byte UUID blobs: blobs compare byte by byte, which is UUID order, so v7 ids sort
-- by creation time. Instants are INTEGER microseconds since the Unix epoch (UTC), so they sort
-- and compare as numbers. JSON documents are TEXT.

CREATE TABLE users (
    id         BLOB PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    name       TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, id);

-- No foreign key to users: admitting a job must cost one index insert per index, nothing more.
CREATE TABLE jobs (
    id               BLOB PRIMARY KEY NOT NULL,
    owner_id         BLOB NOT NULL,
    workflow         TEXT NOT NULL,
    input            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'dead', 'canceled')),
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    run_after        INTEGER NOT NULL,
    result           TEXT,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    request_hash     TEXT NOT NULL,
    lease_token      BLOB,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);

CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- What claim_due walks, oldest run_after first; holds only the jobs waiting to run.
CREATE INDEX jobs_due ON jobs (run_after, id) WHERE status IN ('queued', 'failed');
-- What reap_expired walks: the running jobs, at most one per worker. It leaves lease_expires_at
-- unindexed so that a heartbeat rewrites no index entry.
CREATE INDEX jobs_running ON jobs (id) WHERE status = 'running';
CREATE INDEX jobs_by_owner ON jobs (owner_id, id);

CREATE TABLE job_steps (
    job_id      BLOB NOT NULL,
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
    output      TEXT NOT NULL,
    error       TEXT,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, step_id)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id         BLOB PRIMARY KEY NOT NULL,
    channel    TEXT NOT NULL,
    to_addr    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    job_id     BLOB,
    created_at INTEGER NOT NULL
);
