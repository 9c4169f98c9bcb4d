-- Developer tiers and API usage: calls per user per day, UTC ('YYYY-MM-DD'). A month's count is
-- the sum of its days; the quota is checked against it.

CREATE TABLE user_tiers (
    user_id    BLOB PRIMARY KEY NOT NULL,
    tier       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE api_usage_days (
    user_id BLOB NOT NULL,
    day     TEXT NOT NULL,
    calls   INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;
