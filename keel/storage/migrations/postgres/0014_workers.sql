-- Worker processes (issue 17; docs/operations.md "Workers"): one row per running worker pool (an
-- API process's in-process pool or a `keel worker` process), written at its start, its seen_at
-- refreshed by its lease heartbeat, deleted when it stops cleanly. A killed process leaves its
-- row behind: GET /keel/workers reports it not alive once seen_at is old, and a registration
-- deletes rows unseen for a day. Times are epoch seconds; beat_seconds: how often seen_at is
-- refreshed. Its leases are the runs it holds (runs.worker_id), not copied here.
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    slots INTEGER NOT NULL,
    beat_seconds DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL
);
