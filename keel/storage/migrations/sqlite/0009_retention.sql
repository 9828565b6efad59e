-- Retention (issue 12). A thread's TTL in minutes and when its action is due (epoch seconds:
-- last change + TTL; NULL when it has none, or after a keep_latest prune until it changes again).
ALTER TABLE threads ADD COLUMN ttl_minutes REAL;
ALTER TABLE threads ADD COLUMN expires_at REAL;
UPDATE threads SET ttl_minutes = json_extract(ttl, '$.ttl') WHERE ttl IS NOT NULL;
UPDATE threads SET expires_at = (julianday(updated_at) - 2440587.5) * 86400.0 + ttl_minutes * 60
    WHERE ttl_minutes IS NOT NULL;
CREATE INDEX IF NOT EXISTS threads_expires_at ON threads(expires_at) WHERE expires_at IS NOT NULL;
-- When a finished run's event log was removed by retention (NULL: still there).
ALTER TABLE runs ADD COLUMN events_swept_at TEXT;
CREATE INDEX IF NOT EXISTS runs_events_kept ON runs(updated_at) WHERE events_swept_at IS NULL;
