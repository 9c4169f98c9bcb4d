-- Claims, finishes and heartbeats no longer rewrite an indexed column of `jobs`, so each of
-- those updates is HOT: the new row version lands on the same page and no index gains an entry.
-- What the engine has to find by status moves into two narrow tables, written in the same
-- transactions as the job rows:
--
-- - `job_queue`: one row per job waiting to run (`queued` or `failed`), keyed in claim order.
--   Admitting, a retry, a delay, a release and a reaped lease insert a row; a claim or a cancel
--   deletes it.
-- - `job_leases`: one row per `running` job: the lease that fences its writes. A claim inserts
--   it, a heartbeat extends it (a HOT update: `expires_at` is not indexed), and the end of the
--   attempt or a reap deletes it.

CREATE TABLE job_queue (
    run_after timestamptz NOT NULL,
    id        uuid NOT NULL,
    PRIMARY KEY (run_after, id)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE job_leases (
    id         uuid PRIMARY KEY,
    token      uuid NOT NULL,
    worker     text NOT NULL,
    expires_at timestamptz NOT NULL
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

INSERT INTO job_queue (run_after, id)
SELECT run_after, id FROM jobs WHERE status IN ('queued', 'failed');

INSERT INTO job_leases (id, token, worker, expires_at)
SELECT id, lease_token, lease_owner, lease_expires_at FROM jobs WHERE status = 'running';

DROP INDEX jobs_due;
DROP INDEX jobs_running;

-- A claim or a finish updates every job of its batch in one transaction, and jobs admitted
-- together share pages, so a page must have room for a new version of each of its rows at once
-- (the old versions are pruned only after the transaction ends). Applies to pages filled from now.
ALTER TABLE jobs
    SET (fillfactor = 50),
    DROP COLUMN lease_token,
    DROP COLUMN lease_owner,
    DROP COLUMN lease_expires_at;
