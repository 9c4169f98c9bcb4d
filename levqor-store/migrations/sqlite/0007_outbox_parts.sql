-- Emails rendered from templates carry an HTML part and extra headers (List-Unsubscribe).
ALTER TABLE outbox ADD COLUMN html TEXT;
ALTER TABLE outbox ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
