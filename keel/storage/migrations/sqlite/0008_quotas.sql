-- Quotas (keel/auth/quotas.py). Requests per second are counted in memory on SQLite (one
-- process per database); PostgreSQL keeps them in `quota_rates`.
-- Runs: a subject's ('org:<org>', 'key:<key id>') runs created on `on_day` (UTC, YYYY-MM-DD),
-- upserted inside the run-creation transaction.
CREATE TABLE IF NOT EXISTS quota_runs (
    subject TEXT PRIMARY KEY,
    on_day TEXT NOT NULL,
    runs INTEGER NOT NULL
);
-- Counting an organisation's pending and running runs (concurrent runs).
CREATE INDEX IF NOT EXISTS runs_org_active ON runs(org) WHERE status IN ('pending', 'running');
