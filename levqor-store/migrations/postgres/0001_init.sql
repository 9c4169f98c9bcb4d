-- Levqor on PostgreSQL: uuid ids (v7, so they sort by creation time), timestamptz instants,
-- jsonb documents.

CREATE TABLE users (
    id         uuid PRIMARY KEY,
    email      text NOT NULL,
    name       text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix      text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    scopes      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, id);

-- Every claim, heartbeat and finish rewrites a job row: leave room on each page so the new
-- version lands next to the old one (and heartbeats, which touch no indexed column, stay HOT),
-- and vacuum the dead versions early. No foreign key to users: admitting a job must not pay
-- for a referential check per row.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    owner_id         uuid NOT NULL,
    workflow         jsonb NOT NULL,
    input            jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'dead', 'canceled')),
    attempts         integer NOT NULL,
    max_attempts     integer NOT NULL,
    run_after        timestamptz NOT NULL,
    result           jsonb,
    error            text,
    cancel_requested boolean NOT NULL DEFAULT false,
    idempotency_key  text,
    request_hash     text NOT NULL,
    lease_token      uuid,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- What claim_due walks, oldest run_after first; holds only the jobs waiting to run.
CREATE INDEX jobs_due ON jobs (run_after, id) WHERE status IN ('queued', 'failed');
-- What reap_expired walks: the running jobs, at most one per worker. It leaves lease_expires_at
-- unindexed so that a heartbeat rewrites no index entry.
CREATE INDEX jobs_running ON jobs (id) WHERE status = 'running';
CREATE INDEX jobs_by_owner ON jobs (owner_id, id);

CREATE TABLE job_steps (
    job_id      uuid NOT NULL,
    step_id     text NOT NULL,
    position    integer NOT NULL,
    status      text NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
    output      jsonb NOT NULL,
    error       text,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, step_id)
);

CREATE TABLE outbox (
    id         uuid PRIMARY KEY,
    channel    text NOT NULL,
    to_addr    text NOT NULL,
    subject    text NOT NULL,
    body       text NOT NULL,
    job_id     uuid,
    created_at timestamptz NOT NULL
);
