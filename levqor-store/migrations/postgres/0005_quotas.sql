-- Developer tiers and API usage: calls per user per day (for the usage report) and per month
-- (what the quota is checked against). Months are 'YYYY-MM', days 'YYYY-MM-DD', UTC.

CREATE TABLE user_tiers (
    user_id    uuid PRIMARY KEY,
    tier       text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE api_usage_days (
    user_id uuid NOT NULL,
    day     text NOT NULL,
    calls   bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);

CREATE TABLE api_usage_months (
    user_id uuid NOT NULL,
    month   text NOT NULL,
    calls   bigint NOT NULL,
    PRIMARY KEY (user_id, month)
);
