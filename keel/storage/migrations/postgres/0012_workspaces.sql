-- Workspace snapshots (issue 14; docs/sandbox.md "Several hosts"): the last published tar.gz of a
-- thread's sandbox workspace, so a run that lands on another host restores it. version: bumped by
-- each publish (compare-and-set); bytes: the workspace's file bytes. Deleted with the thread.
CREATE TABLE IF NOT EXISTS workspaces (
    thread_id TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    archive BYTEA NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
-- Every publish rewrites the row (and its TOASTed archive): vacuum after 5 % dead rows, as 0009.
ALTER TABLE workspaces SET (
    autovacuum_vacuum_scale_factor = 0.05, toast.autovacuum_vacuum_scale_factor = 0.05
);
