"""Shared pieces of the named queries: row decoding, JSON binding, metadata containment."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from keel.serde import dumps, loads

Row = dict[str, Any]
JSON_COLUMNS = {
    "config",
    "context",
    "metadata",
    "values",
    "interrupts",
    "error",
    "ttl",
    "kwargs",
    "result",
    "payload",
}

ASSISTANT_COLS = (
    "assistant_id, graph_id, config, context, metadata, name, description, version, "
    "created_at, updated_at"
)
CRON_COLS = (
    "cron_id, assistant_id, thread_id, on_run_completed, end_time, schedule, timezone, "
    "created_at, updated_at, payload, user_id, next_run_date, metadata, enabled"
)


def decode_row(description: Any, row: tuple[Any, ...]) -> Row:
    """A row as a dict, with Keel's JSON columns decoded."""
    out: Row = {}
    for (name, *_), value in zip(description, row, strict=True):
        out[name] = loads(value) if name in JSON_COLUMNS and value is not None else value
    return out


def j(value: Any) -> str:
    return dumps(value).decode()


def _json_path(key: str) -> str:
    if '"' in key or "\\" in key:
        raise ValueError(f"unsupported filter key {key!r}")
    return f'$."{key}"'


def containment(column: str, filt: dict[str, Any], prefix: str = "$") -> tuple[str, list[Any]]:
    """SQL for "column's JSON object contains `filt`" (nested objects recurse)."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filt.items():
        path = prefix + _json_path(key)[1:]
        if isinstance(value, dict) and value:
            sub, sub_params = containment(column, value, path)
            clauses.append(sub)
            params.extend(sub_params)
        elif value is None:
            clauses.append(f"json_type({column}, ?) = 'null'")
            params.append(path)
        elif isinstance(value, (dict, list)):
            clauses.append(f"json_extract({column}, ?) = json(?)")
            params.extend([path, j(value)])
        elif isinstance(value, bool):
            clauses.append(f"json_type({column}, ?) = ?")
            params.extend([path, "true" if value else "false"])
        else:
            clauses.append(f"json_extract({column}, ?) = ?")
            params.extend([path, value])
    return (" AND ".join(clauses) or "1=1"), params


class Queries:
    """Statement helpers; the resource mixins build their named queries on these."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self.conn.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else decode_row(cur.description, row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self.conn.execute(sql, params)
        desc = cur.description
        return [decode_row(desc, row) for row in cur.fetchall()]

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)
