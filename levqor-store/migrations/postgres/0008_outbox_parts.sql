-- Emails rendered from templates carry an HTML part and extra headers (List-Unsubscribe).
ALTER TABLE outbox ADD COLUMN html text;
ALTER TABLE outbox ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';
