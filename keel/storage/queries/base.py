"""Shared pieces of the named queries: the dialect hooks, row decoding and JSON binding.

Every named query is written once, with `?` placeholders; a dialect file (`sqlite.py`,
`postgres.py`) supplies the four statement primitives and the few fragments that differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from keel.errors import InvalidInput
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

# Tables an auth scope applies to, and their keys.
SCOPED_TABLES = {"threads": "thread_id", "assistants": "assistant_id", "crons": "cron_id"}

ASSISTANT_COLS = (
    "assistant_id, graph_id, config, context, metadata, name, description, version, "
    "created_at, updated_at"
)
CRON_COLS = (
    "cron_id, assistant_id, thread_id, on_run_completed, end_time, schedule, timezone, "
    "created_at, updated_at, payload, user_id, next_run_date, metadata, enabled"
)


def decode_row(description: Any, row: tuple[Any, ...]) -> Row:
    """A row as a dict, with Keel's JSON columns decoded (SQLite stores them as text)."""
    out: Row = {}
    for (name, *_), value in zip(description, row, strict=True):
        out[name] = loads(value) if name in JSON_COLUMNS and value is not None else value
    return out


def j(value: Any) -> str:
    return dumps(value).decode()


UNSAFE_KEY_CHARS = ('"', "'", "\\", "\x00")


def json_key(key: str) -> str:
    """A JSON object key made part of a path; one holding a quote, a backslash or a NUL cannot
    be (a filter on it is bad input: 422, not a failure)."""
    if any(c in key for c in UNSAFE_KEY_CHARS):
        raise InvalidInput(
            f"unsupported filter key {key!r}: quotes, backslashes and NUL are not allowed"
        )
    return key


class Dialect:
    """SQL fragments that differ between databases. This base is SQLite's."""

    name = "sqlite"
    # Appended to the claim's candidate query: lets concurrent claimers pass each other.
    skip_locked = ""
    # Appended to a SELECT to lock its rows until the transaction ends (SQLite: the whole
    # database is locked by every write transaction already).
    for_update = ""

    def containment(self, column: str, filt: Row, prefix: str = "$") -> tuple[str, list[Any]]:
        """SQL for "column's JSON object contains `filt`" (nested objects recurse)."""
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in filt.items():
            path = f'{prefix}."{json_key(key)}"'
            if isinstance(value, dict) and value:
                sub, sub_params = self.containment(column, value, path)
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

    def json_compare(
        self, column: str, path: list[str], sql_op: str, operand: Any
    ) -> tuple[str, list[Any]]:
        """SQL for "the JSON value at `path` compares to `operand`" (numbers with numbers,
        strings with strings bytewise; any other JSON type never matches)."""
        where = "$" + "".join(f'."{json_key(k)}"' for k in path)
        types = "'text'" if isinstance(operand, str) else "'integer', 'real'"
        sql = (
            f"(CASE WHEN json_type({column}, ?) IN ({types}) "
            f"THEN json_extract({column}, ?) END) {sql_op} ?"
        )
        return sql, [where, where, operand]

    def json_equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """SQL for "the top-level `key` of JSON `column` equals `value`" (auth filters)."""
        path = f'$."{json_key(key)}"'
        if value is None or isinstance(value, bool):
            kind = "null" if value is None else ("true" if value else "false")
            return f"json_type({column}, ?) = ?", [path, kind]
        if isinstance(value, str):
            return f"(json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?)", [
                path,
                path,
                value,
            ]
        if isinstance(value, (int, float)):
            numeric = f"json_type({column}, ?) IN ('integer', 'real')"
            return f"({numeric} AND json_extract({column}, ?) = ?)", [path, path, value]
        return f"json_extract({column}, ?) = json(?)", [path, j(value)]

    def json_list_holds(self, column: str, key: str, values: list[Any]) -> tuple[str, list[Any]]:
        """SQL for "the top-level `key` of JSON `column` is a list holding each of `values`"."""
        path = f'$."{json_key(key)}"'
        clauses = [f"json_type({column}, ?) = 'array'"]
        params: list[Any] = [path]
        for value in values:
            test, p = _element_test(value)
            clauses.append(f"EXISTS (SELECT 1 FROM json_each({column}, ?) AS e WHERE {test})")
            params.extend([path, *p])
        return "(" + " AND ".join(clauses) + ")", params

    def contains_text(self, column: str) -> str:
        """Case-insensitive "column contains the bound string"."""
        return f"instr(lower({column}), lower(?)) > 0"

    def json_text(self, column: str, key: str) -> str:
        """A top-level key of a JSON column, as text."""
        return f"json_extract(CAST({column} AS TEXT), '$.\"{json_key(key)}\"')"


def _element_test(value: Any) -> tuple[str, list[Any]]:
    """SQL on a `json_each` row `e`: the element equals `value`."""
    if value is None or isinstance(value, bool):
        return "e.type = ?", ["null" if value is None else ("true" if value else "false")]
    if isinstance(value, str):
        return "(e.type = 'text' AND e.atom = ?)", [value]
    if isinstance(value, (int, float)):
        return "(e.type IN ('integer', 'real') AND e.atom = ?)", [value]
    return "e.value = json(?)", [j(value)]


class Queries:
    """Statement primitives; each dialect's `Tx` implements them over its connection."""

    dialect: Dialect

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        raise NotImplementedError

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; return the number of rows changed."""
        raise NotImplementedError

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    async def in_scope(self, table: str, ident: str, where: str, params: Sequence[Any]) -> bool:
        """Whether the row `ident` of `table` exists and satisfies `where` (an auth scope)."""
        key = SCOPED_TABLES[table]
        row = await self.one(
            f"SELECT 1 AS found FROM {table} WHERE {key}=? AND {where}", [ident, *params]
        )
        return row is not None

    async def notify(self, channel: str, payload: str) -> None:
        """Tell other processes sharing the database (delivered at commit); no-op if none can."""
