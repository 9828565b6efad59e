-- Built-in API keys (`keel keys`): only a SHA-256 of each key is kept; the key itself is shown
-- once, when it is created. Times are ISO-8601 text, as everywhere else.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    hash TEXT NOT NULL,
    name TEXT,
    org TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT,
    expires_at TEXT COLLATE "C",
    revoked_at TEXT COLLATE "C",
    last_used_at TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS api_keys_org ON api_keys(org, created_at);

-- The audit log: who did what. Append-only: the trigger refuses every UPDATE, DELETE and
-- TRUNCATE (a guard against the application and mistakes, not against the table's owner, who
-- can drop the trigger).
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TEXT COLLATE "C" NOT NULL,
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
CREATE OR REPLACE FUNCTION keel_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION keel_audit_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION keel_audit_append_only();
