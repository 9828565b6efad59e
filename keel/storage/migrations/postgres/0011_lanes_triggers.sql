-- Priority lanes and sleep-time triggers (issue 13; docs/sleep-time.md).
-- A run's lane: 0 interactive, 1 background. The claim takes the lowest lane first.
ALTER TABLE runs ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS runs_claim ON runs(status, lane, created_at);
-- One row per (trigger, subject): a source thread, or '*' for a schedule's own firing time.
-- due_at: when it fires (NULL: not armed); ended_runs: runs ended since it last fired;
-- day/day_runs: its background runs on that UTC day (the budget); payload: what the
-- background run carries over from the source (its configurable).
CREATE TABLE IF NOT EXISTS trigger_states (
    trigger_name TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_at TEXT,
    ended_runs INTEGER NOT NULL DEFAULT 0,
    day TEXT,
    day_runs INTEGER NOT NULL DEFAULT 0,
    payload JSONB,
    PRIMARY KEY (trigger_name, subject)
);
CREATE INDEX IF NOT EXISTS trigger_states_due ON trigger_states(due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS trigger_states_subject ON trigger_states(subject);
