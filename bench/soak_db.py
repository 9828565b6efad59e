"""The soak's view of a database (bench/soak.py): size and row counts, read-only, short-lived.

Each reading opens its own read-only connection and closes it at once, so it never holds a
snapshot that would keep SQLite's WAL from being checkpointed or PostgreSQL's vacuum from
removing dead rows. SQLite's size is the database file plus its WAL; PostgreSQL's is
`pg_database_size`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

TABLES = ("threads", "runs", "run_events", "checkpoints")
# (table, owner column): rows per owner, for bounds that scale with the owners
OWNED = (("run_events", "run_id"), ("checkpoints", "thread_id"))


@dataclass
class DbReading:
    bytes: int
    rows: dict[str, int]
    # distinct owners and the most rows one owner has: run_events per run, checkpoints per thread
    owners: dict[str, int]
    most_per_owner: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _queries() -> list[tuple[str, str]]:
    out = [(f"rows:{table}", f"SELECT count(*) FROM {table}") for table in TABLES]
    for table, owner in OWNED:
        out.append((f"owners:{table}", f"SELECT count(DISTINCT {owner}) FROM {table}"))
        out.append(
            (
                f"most:{table}",
                f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM {table} "
                f"GROUP BY {owner}) AS per_owner",
            )
        )
    return out


def _reading(size: int, values: dict[str, int]) -> DbReading:
    def part(prefix: str, names: tuple[str, ...]) -> dict[str, int]:
        return {name: values[f"{prefix}:{name}"] for name in names}

    owned = tuple(table for table, _ in OWNED)
    return DbReading(size, part("rows", TABLES), part("owners", owned), part("most", owned))


def sqlite_bytes(path: Path) -> int:
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            total += file.stat().st_size
    return total


def read_sqlite(path: Path) -> DbReading:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        values = {key: int(conn.execute(sql).fetchone()[0]) for key, sql in _queries()}
    finally:
        conn.close()
    return _reading(sqlite_bytes(path), values)


def read_postgres(url: str) -> DbReading:
    options = "-c default_transaction_read_only=on -c statement_timeout=60000"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        values: dict[str, int] = {}
        for key, sql in _queries():
            row = conn.execute(sql).fetchone()
            values[key] = int(row[0]) if row is not None else 0
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        size = int(row[0]) if row is not None else 0
    return _reading(size, values)
