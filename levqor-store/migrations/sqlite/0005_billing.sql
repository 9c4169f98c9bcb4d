-- Billing: each user's payment-provider customer, the provider events already applied (so a
-- replayed webhook changes nothing), the dunning ladder, revenue and discount codes.

CREATE TABLE billing_customers (
    user_id     BLOB PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL UNIQUE
);

CREATE TABLE billing_events (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

CREATE TABLE dunning (
    user_id        BLOB PRIMARY KEY NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('active', 'past_due', 'suspended')),
    since          INTEGER NOT NULL,
    reminders_sent INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE revenue (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      BLOB,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    source       TEXT NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX revenue_by_time ON revenue (at);

CREATE TABLE discount_codes (
    code            TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('percent', 'fixed')),
    value           INTEGER NOT NULL,
    expires_at      INTEGER,
    max_redemptions INTEGER,
    redemptions     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    CHECK (max_redemptions IS NULL OR redemptions <= max_redemptions)
);

CREATE TABLE discount_redemptions (
    code        TEXT NOT NULL,
    user_id     BLOB NOT NULL,
    redeemed_at INTEGER NOT NULL,
    PRIMARY KEY (code, user_id)
);
