-- Developer tiers and API usage: calls per user per day, UTC ('YYYY-MM-DD'). A month's count is
-- the sum of its days; the quota is checked against it.

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
