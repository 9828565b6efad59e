-- A run's position among its thread's runs, fixed at creation (issue 16; docs/thread-stream.md
-- "seq"): the v3 thread stream's seq is ordinal << 32 | local, so deleting a run must not
-- renumber the runs after it. threads.runs_made counts the runs ever created on the thread and
-- never goes down, so a deleted last run's ordinal is not given to the next one either.
ALTER TABLE threads ADD COLUMN runs_made INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN thread_ordinal INTEGER;
UPDATE runs SET thread_ordinal = o.n
FROM (
    SELECT run_id, row_number() OVER (PARTITION BY thread_id ORDER BY created_at, run_id) AS n
    FROM runs
) AS o
WHERE runs.run_id = o.run_id;
UPDATE threads SET runs_made = (SELECT COUNT(*) FROM runs WHERE runs.thread_id = threads.thread_id);
