-- Built-in API keys (`keel keys`): only a SHA-256 of each key is kept; the key itself is shown
-- once, when it is created. Times are ISO-8601 text, as everywhere else.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    name TEXT,
    org TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_org ON api_keys(org, created_at);

-- The audit log: who did what. Append-only: the triggers refuse every UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    identity TEXT,
    org TEXT,
    action TEXT NOT NULL,
    resource_id TEXT,
    outcome TEXT NOT NULL,
    status INTEGER,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_org ON audit_log(org, id);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
