CREATE TABLE IF NOT EXISTS crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL,
    thread_id TEXT,
    on_run_completed TEXT,
    end_time TEXT,
    schedule TEXT NOT NULL,
    timezone TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    user_id TEXT,
    next_run_date TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS crons_due ON crons(enabled, next_run_date);
CREATE INDEX IF NOT EXISTS crons_thread ON crons(thread_id);
CREATE INDEX IF NOT EXISTS crons_assistant ON crons(assistant_id);
