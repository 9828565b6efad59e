-- Keel's own long-term memory tables (until now LangGraph's SqliteStore table `store`).
-- Items keep LangGraph's column names; `expires_at` is in epoch seconds so a refresh is
-- `now + ttl_minutes * 60` in SQL. Vectors carry the `store_clock` sequence of the write that
-- made them, and deletions are logged, so every process can bring its in-memory index up to date.
CREATE TABLE IF NOT EXISTS store_items (
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at REAL,
    ttl_minutes REAL,
    PRIMARY KEY (prefix, key)
);
CREATE INDEX IF NOT EXISTS store_items_updated ON store_items(updated_at);
CREATE INDEX IF NOT EXISTS store_items_expires ON store_items(expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS store_vectors (
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    seq INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (prefix, key, field)
);
CREATE INDEX IF NOT EXISTS store_vectors_seq ON store_vectors(seq);

CREATE TABLE IF NOT EXISTS store_vector_deletes (
    seq INTEGER NOT NULL,
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS store_vector_deletes_seq ON store_vector_deletes(seq);

CREATE TABLE IF NOT EXISTS store_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    pruned_through INTEGER NOT NULL
);
INSERT OR IGNORE INTO store_clock VALUES (1, 0, 0);

-- Items an earlier Keel kept in LangGraph's table move over (it had no vectors).
CREATE TABLE IF NOT EXISTS store (
    prefix TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP,
    ttl_minutes REAL,
    PRIMARY KEY (prefix, key)
);
INSERT OR IGNORE INTO store_items
SELECT prefix, key, value,
       strftime('%Y-%m-%dT%H:%M:%f000+00:00', created_at),
       strftime('%Y-%m-%dT%H:%M:%f000+00:00', updated_at),
       CAST(strftime('%s', expires_at) AS REAL), ttl_minutes
FROM store;
DROP TABLE store;
DROP TABLE IF EXISTS store_migrations;
