-- Organisations (built-in auth): every thread, run, assistant and cron belongs to one; NULL is
-- none (auth off, or system assistants every organisation may read).
ALTER TABLE threads ADD COLUMN org TEXT;
ALTER TABLE runs ADD COLUMN org TEXT;
ALTER TABLE assistants ADD COLUMN org TEXT;
ALTER TABLE crons ADD COLUMN org TEXT;
CREATE INDEX IF NOT EXISTS threads_org ON threads(org);
CREATE INDEX IF NOT EXISTS runs_org ON runs(org, created_at);
CREATE INDEX IF NOT EXISTS assistants_org ON assistants(org);
CREATE INDEX IF NOT EXISTS crons_org ON crons(org);
