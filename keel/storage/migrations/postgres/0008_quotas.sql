-- Quotas (keel/auth/quotas.py). Requests per second: one token bucket per subject ('org:<org>',
-- 'key:<key id>'), kept as its theoretical arrival time `tat` (epoch seconds; GCRA, see
-- keel/auth/ratelimit.py), and how many tokens the last lease granted. Every process sharing
-- the database leases tokens from the same row, a few at a time, with one upsert.
CREATE TABLE IF NOT EXISTS quota_rates (
    subject TEXT COLLATE "C" PRIMARY KEY,
    tat DOUBLE PRECISION NOT NULL,
    granted INTEGER NOT NULL
);
-- Runs: a subject's runs created on `on_day` (UTC, YYYY-MM-DD). Run creation upserts the row
-- inside its transaction, which also locks the subject: two processes cannot both take its
-- last slot.
CREATE TABLE IF NOT EXISTS quota_runs (
    subject TEXT COLLATE "C" PRIMARY KEY,
    on_day TEXT COLLATE "C" NOT NULL,
    runs INTEGER NOT NULL
);
-- Counting an organisation's pending and running runs (concurrent runs).
CREATE INDEX IF NOT EXISTS runs_org_active ON runs(org) WHERE status IN ('pending', 'running');
