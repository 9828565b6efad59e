CREATE TABLE IF NOT EXISTS assistants (
    assistant_id TEXT COLLATE "C" PRIMARY KEY,
    graph_id TEXT NOT NULL,
    config JSONB NOT NULL DEFAULT '{}',
    context JSONB NOT NULL DEFAULT '{}',
    metadata JSONB NOT NULL DEFAULT '{}',
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE IF NOT EXISTS assistant_versions (
    assistant_id TEXT COLLATE "C" NOT NULL REFERENCES assistants(assistant_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    config JSONB NOT NULL DEFAULT '{}',
    context JSONB NOT NULL DEFAULT '{}',
    metadata JSONB NOT NULL DEFAULT '{}',
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT COLLATE "C" PRIMARY KEY,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    state_updated_at TEXT COLLATE "C",
    metadata JSONB NOT NULL DEFAULT '{}',
    config JSONB NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'idle',
    "values" JSONB,
    interrupts JSONB NOT NULL DEFAULT '{}',
    error JSONB,
    ttl JSONB
);
CREATE INDEX IF NOT EXISTS threads_updated_at ON threads(updated_at);

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    thread_id TEXT COLLATE "C" NOT NULL,
    assistant_id TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    kwargs JSONB NOT NULL DEFAULT '{}',
    multitask_strategy TEXT,
    temporary INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_until DOUBLE PRECISION,
    cancel_action TEXT,
    result JSONB
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs(thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_pending ON runs(status, created_at);

CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    thread_id TEXT COLLATE "C" NOT NULL,
    event TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS run_events_thread ON run_events(thread_id);
