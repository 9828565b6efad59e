-- Thread-level events (e.g. state_update) for thread streams in other processes; kept briefly.
CREATE TABLE IF NOT EXISTS thread_events (
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (thread_id, event_id)
);
CREATE INDEX IF NOT EXISTS thread_events_created ON thread_events(created_at);
