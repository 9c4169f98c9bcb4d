-- Credits: the append-only ledger, each account's totals, the buckets that spending consumes
-- and the holds of admitted jobs. The CHECKs are the last line of defence of the ledger's
-- promise: nothing may leave an account with less available than nothing.

CREATE TABLE credit_accounts (
    user_id uuid PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0,
    held    bigint NOT NULL DEFAULT 0,
    CHECK (held >= 0),
    CHECK (balance - held >= 0)
);

CREATE TABLE credit_entries (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('grant', 'purchase', 'hold', 'settle', 'release',
                        'refund', 'referral', 'adjustment', 'expiry')),
    credits         bigint NOT NULL,
    held            bigint NOT NULL,
    job_id          uuid,
    idempotency_key text NOT NULL,
    reason          text,
    priority        integer NOT NULL,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX credit_entries_by_user ON credit_entries (user_id, id);

CREATE TABLE credit_buckets (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    rank       integer NOT NULL,
    priority   integer NOT NULL,
    expires_at timestamptz,
    remaining  bigint NOT NULL CHECK (remaining >= 0)
);
CREATE INDEX credit_buckets_open ON credit_buckets (user_id) WHERE remaining > 0;
CREATE INDEX credit_buckets_expiring ON credit_buckets (expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE credit_holds (
    job_id     uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    credits    bigint NOT NULL CHECK (credits >= 0),
    quote      jsonb NOT NULL,
    expires_at timestamptz NOT NULL,
    open       boolean NOT NULL
);
CREATE INDEX credit_holds_open ON credit_holds (job_id) WHERE open;
