CREATE TABLE IF NOT EXISTS crons (
    cron_id TEXT COLLATE "C" PRIMARY KEY,
    assistant_id TEXT COLLATE "C" NOT NULL,
    thread_id TEXT COLLATE "C",
    on_run_completed TEXT,
    end_time TEXT COLLATE "C",
    schedule TEXT NOT NULL,
    timezone TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    user_id TEXT,
    next_run_date TEXT COLLATE "C",
    metadata JSONB NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS crons_due ON crons(enabled, next_run_date);
CREATE INDEX IF NOT EXISTS crons_thread ON crons(thread_id);
CREATE INDEX IF NOT EXISTS crons_assistant ON crons(assistant_id);
