-- Developer tiers and API usage: calls per user per day (for the usage report) and per month
-- (what the quota is checked against). Months are 'YYYY-MM', days 'YYYY-MM-DD', UTC.

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

CREATE TABLE api_usage_months (
    user_id BLOB NOT NULL,
    month   TEXT NOT NULL,
    calls   INTEGER NOT NULL,
    PRIMARY KEY (user_id, month)
) WITHOUT ROWID;
