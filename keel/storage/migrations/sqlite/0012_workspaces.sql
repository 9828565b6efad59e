-- Workspace snapshots (issue 14; docs/sandbox.md "Several hosts"): the last published tar.gz of a
-- thread's sandbox workspace, so a run that lands on another host restores it. version: bumped by
-- each publish (compare-and-set); bytes: the workspace's file bytes. Deleted with the thread.
CREATE TABLE IF NOT EXISTS workspaces (
    thread_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    archive BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
