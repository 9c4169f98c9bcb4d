-- Billing: each user's payment-provider customer, the provider events already applied (so a
-- replayed webhook changes nothing), the dunning ladder, revenue and discount codes.

CREATE TABLE billing_customers (
    user_id     uuid PRIMARY KEY,
    customer_id text NOT NULL UNIQUE
);

CREATE TABLE billing_events (
    id          text PRIMARY KEY NOT NULL,
    kind        text NOT NULL,
    received_at timestamptz NOT NULL
);

CREATE TABLE dunning (
    user_id        uuid PRIMARY KEY,
    state          text NOT NULL CHECK (state IN ('active', 'past_due', 'suspended')),
    since          timestamptz NOT NULL,
    reminders_sent integer NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE revenue (
    id           text PRIMARY KEY NOT NULL,
    user_id      uuid,
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    source       text NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX revenue_by_time ON revenue (at);

CREATE TABLE discount_codes (
    code            text PRIMARY KEY NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('percent', 'fixed')),
    value           bigint NOT NULL,
    expires_at      timestamptz,
    max_redemptions bigint,
    redemptions     bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    CHECK (max_redemptions IS NULL OR redemptions <= max_redemptions)
);

CREATE TABLE discount_redemptions (
    code        text NOT NULL,
    user_id     uuid NOT NULL,
    redeemed_at timestamptz NOT NULL,
    PRIMARY KEY (code, user_id)
);
