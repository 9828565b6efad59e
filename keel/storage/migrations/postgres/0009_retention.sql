-- Retention (issue 12). A thread's TTL in minutes and when its action is due (epoch seconds:
-- last change + TTL; NULL when it has none, or after a keep_latest prune until it changes again).
ALTER TABLE threads ADD COLUMN ttl_minutes DOUBLE PRECISION;
ALTER TABLE threads ADD COLUMN expires_at DOUBLE PRECISION;
UPDATE threads SET ttl_minutes = (ttl->>'ttl')::double precision WHERE ttl IS NOT NULL;
UPDATE threads SET expires_at = EXTRACT(EPOCH FROM updated_at::timestamptz) + ttl_minutes * 60
    WHERE ttl_minutes IS NOT NULL;
CREATE INDEX IF NOT EXISTS threads_expires_at ON threads(expires_at) WHERE expires_at IS NOT NULL;
-- When a finished run's event log was removed by retention (NULL: still there).
ALTER TABLE runs ADD COLUMN events_swept_at TEXT COLLATE "C";
CREATE INDEX IF NOT EXISTS runs_events_kept ON runs(updated_at) WHERE events_swept_at IS NULL;
-- Tables the sweeper deletes from in steady state: vacuum them after 5 % dead rows (default 20 %)
-- so freed space is reused sooner (docs/retention.md).
ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE run_events SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE threads SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE thread_events SET (autovacuum_vacuum_scale_factor = 0.05);
