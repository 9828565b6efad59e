-- At most one running run per thread, enforced by the database: two processes claiming runs of
-- the same thread at once cannot both succeed.
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_running ON runs(thread_id) WHERE status = 'running';
