-- Keel's own long-term memory tables (until now LangGraph's PostgresStore table `store`).
-- See the SQLite twin for the design; namespaces sort bytewise (COLLATE "C") so a prefix is a
-- range of the primary key.
CREATE TABLE IF NOT EXISTS store_items (
    prefix TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value JSONB NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    expires_at DOUBLE PRECISION,
    ttl_minutes DOUBLE PRECISION,
    PRIMARY KEY (prefix, key)
);
CREATE INDEX IF NOT EXISTS store_items_updated ON store_items(updated_at);
CREATE INDEX IF NOT EXISTS store_items_expires ON store_items(expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS store_vectors (
    prefix TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    field TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    embedding BYTEA NOT NULL,
    PRIMARY KEY (prefix, key, field)
);
CREATE INDEX IF NOT EXISTS store_vectors_seq ON store_vectors(seq);

CREATE TABLE IF NOT EXISTS store_vector_deletes (
    seq BIGINT NOT NULL,
    prefix TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS store_vector_deletes_seq ON store_vector_deletes(seq);

CREATE TABLE IF NOT EXISTS store_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO store_clock VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;

-- Items an earlier Keel kept in LangGraph's table move over (it had no vectors).
CREATE TABLE IF NOT EXISTS store (
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMPTZ,
    ttl_minutes INT,
    PRIMARY KEY (prefix, key)
);
INSERT INTO store_items
SELECT prefix, key, value,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
       extract(epoch FROM expires_at)::double precision, ttl_minutes
FROM store
ON CONFLICT DO NOTHING;
DROP TABLE store;
DROP TABLE IF EXISTS store_migrations;
