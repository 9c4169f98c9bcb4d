-- Credits: the append-only ledger, each account's totals, the buckets that spending consumes
-- and the holds of admitted jobs. The CHECKs are the last line of defence of the ledger's
-- promise: nothing may leave an account with less available than nothing.

CREATE TABLE credit_accounts (
    user_id BLOB PRIMARY KEY NOT NULL,
    balance INTEGER NOT NULL DEFAULT 0,
    held    INTEGER NOT NULL DEFAULT 0,
    CHECK (held >= 0),
    CHECK (balance - held >= 0)
);

CREATE TABLE credit_entries (
    id              BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'purchase', 'hold', 'settle', 'release',
                        'refund', 'referral', 'adjustment', 'expiry')),
    credits         INTEGER NOT NULL,
    held            INTEGER NOT NULL,
    job_id          BLOB,
    idempotency_key TEXT NOT NULL,
    reason          TEXT,
    priority        INTEGER NOT NULL,
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX credit_entries_by_user ON credit_entries (user_id, id);

CREATE TABLE credit_buckets (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL,
    rank       INTEGER NOT NULL,
    priority   INTEGER NOT NULL,
    expires_at INTEGER,
    remaining  INTEGER NOT NULL CHECK (remaining >= 0)
);
CREATE INDEX credit_buckets_open ON credit_buckets (user_id) WHERE remaining > 0;
CREATE INDEX credit_buckets_expiring ON credit_buckets (expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE credit_holds (
    job_id     BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL,
    credits    INTEGER NOT NULL CHECK (credits >= 0),
    quote      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    open       BOOLEAN NOT NULL
);
CREATE INDEX credit_holds_open ON credit_holds (job_id) WHERE open;
