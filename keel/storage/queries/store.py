"""Long-term memory: every SQL statement the store runs (the one place tenancy filters will go).

A namespace is stored as its labels joined by `.` (labels never contain one); namespace prefix
`a.b` is the key range `["a.b.", "a.b/")` plus `a.b` itself, so prefixes use the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.storage.queries.base import Dialect, Queries, Row

ITEM_COLS = "prefix, key, value, created_at, updated_at, expires_at, ttl_minutes"
COMPARATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MAX_FILTER_DEPTH = 4
ItemKey = tuple[str, str]


def prefix_clause(prefix: str, column: str = "prefix") -> tuple[str, list[Any]]:
    """`column` is namespace `prefix` or below it ('' matches everything)."""
    if not prefix:
        return "1=1", []
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [
        prefix,
        prefix + ".",
        prefix + "/",
    ]


def live_clause(now: float) -> tuple[str, list[Any]]:
    return "(expires_at IS NULL OR expires_at > ?)", [now]


KEYS_PER_QUERY = 200  # SQLite's expression depth limit is 1000


def keys_clause(keys: Sequence[ItemKey]) -> tuple[str, list[Any]]:
    """An OR of primary-key lookups (SQLite plans `(prefix, key) IN (VALUES ...)` as a scan)."""
    ors = " OR ".join("(prefix = ? AND key = ?)" for _ in keys)
    return f"({ors})", [part for k in keys for part in k]


def chunks(keys: Sequence[ItemKey]) -> list[Sequence[ItemKey]]:
    return [keys[i : i + KEYS_PER_QUERY] for i in range(0, len(keys), KEYS_PER_QUERY)]


def filter_sql(dialect: Dialect, filt: Row | None, depth: int = 0) -> tuple[str, list[Any]]:
    """SQL for LangGraph's store filter: top-level keys AND-ed; a value is an exact match
    (objects match partially) or `{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte"|"$contains": operand}`
    (`$contains`: the list holds the operand, or each element of a list operand). Keel also
    takes `"$and"` / `"$or"`: a list of such filters (how an auth handler's filter is ANDed into
    a search's). Raises `ValueError` for a filter it cannot express."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, want in (filt or {}).items():
        if key in ("$and", "$or"):
            sql, args = _combined(dialect, key, want, depth)
        elif isinstance(want, dict) and any(str(k).startswith("$") for k in want):
            sql, args = _operators(dialect, key, want)
        else:
            sql, args = dialect.containment("value", {key: want})
        clauses.append(sql)
        params.extend(args)
    return (" AND ".join(clauses) or "1=1"), params


def _combined(dialect: Dialect, key: str, filters: Any, depth: int) -> tuple[str, list[Any]]:
    if depth >= MAX_FILTER_DEPTH:
        raise ValueError(f"{key} nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(filters, list) or not filters:
        raise ValueError(f"{key} takes a non-empty list of filters")
    if not all(isinstance(f, dict) for f in filters):
        raise ValueError(f"{key} takes a list of filter objects")
    parts = [filter_sql(dialect, f, depth + 1) for f in filters]
    joiner = " AND " if key == "$and" else " OR "
    return "(" + joiner.join(f"({sql})" for sql, _ in parts) + ")", [
        x for _, args in parts for x in args
    ]


def _operators(dialect: Dialect, key: str, ops: Row) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for op, operand in ops.items():
        sql, args = _operator(dialect, key, op, operand)
        clauses.append(sql)
        params.extend(args)
    return " AND ".join(clauses), params


def _operator(dialect: Dialect, key: str, op: str, operand: Any) -> tuple[str, list[Any]]:
    if op in ("$eq", "$ne"):
        sql, args = dialect.containment("value", {key: operand})
        return (sql, args) if op == "$eq" else (f"NOT COALESCE(({sql}), FALSE)", args)
    if op == "$contains":
        wanted = operand if isinstance(operand, list) else [operand]
        # Qualified: inside json_each's subquery a bare `value` is json_each's own column.
        return dialect.json_list_holds("store_items.value", key, wanted)
    if op not in COMPARATORS:
        raise ValueError(f"unknown operator {op!r} on {key!r}")
    if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
        raise ValueError(f"{op} on {key!r} needs a number or a string, got {operand!r}")
    return dialect.json_compare("value", [key], COMPARATORS[op], operand)


class StoreQueries(Queries):
    # ------------------------------------------------------------------ items
    async def get_store_items(self, keys: Sequence[ItemKey], now: float) -> list[Row]:
        return await self.filter_store_items(keys, None, now)

    async def search_store_items(
        self, prefix: str, filt: Row | None, limit: int, offset: int, now: float
    ) -> list[Row]:
        """Newest first (`updated_at`), like LangGraph's SQL stores."""
        where, params = self._search_where(prefix, filt, now)
        return await self.all(
            f"SELECT {ITEM_COLS} FROM store_items WHERE {where} "
            "ORDER BY updated_at DESC, prefix, key LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def filter_store_items(
        self, keys: Sequence[ItemKey], filt: Row | None, now: float
    ) -> list[Row]:
        """Those of `keys` that are live and match `filt` (semantic search's candidates)."""
        cond, cond_params = self._search_where("", filt, now)
        out: list[Row] = []
        for part in chunks(keys):
            where, params = keys_clause(part)
            out.extend(
                await self.all(
                    f"SELECT {ITEM_COLS} FROM store_items WHERE {where} AND {cond}",
                    [*params, *cond_params],
                )
            )
        return out

    async def unembedded_store_items(
        self, prefix: str, filt: Row | None, limit: int, now: float
    ) -> list[Row]:
        """Live items without vectors (ranked after the scored ones, as LangGraph does)."""
        where, params = self._search_where(prefix, filt, now)
        return await self.all(
            f"SELECT {ITEM_COLS} FROM store_items WHERE {where} AND NOT EXISTS "
            "(SELECT 1 FROM store_vectors v "
            "WHERE v.prefix = store_items.prefix AND v.key = store_items.key) "
            "ORDER BY updated_at DESC, prefix, key LIMIT ?",
            [*params, limit],
        )

    def _search_where(self, prefix: str, filt: Row | None, now: float) -> tuple[str, list[Any]]:
        parts = [prefix_clause(prefix), live_clause(now), filter_sql(self.dialect, filt)]
        return " AND ".join(p[0] for p in parts), [x for p in parts for x in p[1]]

    async def store_namespaces(self, prefix: str, now: float) -> list[str]:
        where, params = prefix_clause(prefix)
        live, live_params = live_clause(now)
        rows = await self.all(
            f"SELECT DISTINCT prefix FROM store_items WHERE {where} AND {live}",
            [*params, *live_params],
        )
        return [r["prefix"] for r in rows]

    async def put_store_items(self, rows: Sequence[Sequence[Any]]) -> None:
        """Upsert (prefix, key, value as JSON text, now, expires_at, ttl_minutes) rows."""
        await self.many(
            f"INSERT INTO store_items ({ITEM_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (prefix, key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at, expires_at = excluded.expires_at, "
            "ttl_minutes = excluded.ttl_minutes",
            [(p, k, v, now, now, exp, ttl) for p, k, v, now, exp, ttl in rows],
        )

    async def delete_store_items(self, keys: Sequence[ItemKey]) -> None:
        await self.many("DELETE FROM store_items WHERE prefix = ? AND key = ?", keys)

    async def refresh_store_ttl(self, keys: Sequence[ItemKey], now: float) -> None:
        await self.many(
            "UPDATE store_items SET expires_at = ? + ttl_minutes * 60 "
            "WHERE prefix = ? AND key = ? AND ttl_minutes IS NOT NULL",
            [(now, p, k) for p, k in keys],
        )

    async def expired_store_items(self, now: float, limit: int) -> list[ItemKey]:
        rows = await self.all(
            "SELECT prefix, key FROM store_items WHERE expires_at <= ? LIMIT ?", [now, limit]
        )
        return [(r["prefix"], r["key"]) for r in rows]

    async def count_expired_store_items(self, now: float) -> int:
        row = await self.one("SELECT COUNT(*) AS n FROM store_items WHERE expires_at <= ?", [now])
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------------ vectors
    async def tick_store_clock(self) -> int:
        """The sequence number of this write. Taking it locks the clock row until commit, so
        writes that touch vectors commit in sequence order (readers can trust `seq`)."""
        row = await self.one("UPDATE store_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        assert row is not None
        return int(row["seq"])

    async def store_clock(self) -> Row:
        row = await self.one("SELECT seq, pruned_through FROM store_clock WHERE id = 1")
        assert row is not None
        return row

    async def drop_store_vectors(self, keys: Sequence[ItemKey], seq: int, now: float) -> None:
        """Delete the vectors of `keys`, logging each deletion for other processes' indexes."""
        await self.many(
            "INSERT INTO store_vector_deletes (seq, prefix, key, at) SELECT DISTINCT ?, prefix, "
            "key, ? FROM store_vectors WHERE prefix = ? AND key = ?",
            [(seq, now, p, k) for p, k in keys],
        )
        await self.many("DELETE FROM store_vectors WHERE prefix = ? AND key = ?", keys)

    async def put_store_vectors(
        self, rows: Sequence[tuple[str, str, str, bytes]], seq: int
    ) -> None:
        await self.many(
            "INSERT INTO store_vectors (prefix, key, field, seq, embedding) VALUES (?, ?, ?, ?, ?)",
            [(p, k, f, seq, e) for p, k, f, e in rows],
        )

    async def store_vectors_between(self, after: int, upto: int) -> list[Row]:
        return await self.all(
            "SELECT prefix, key, seq, embedding FROM store_vectors WHERE seq > ? AND seq <= ?",
            [after, upto],
        )

    async def store_vector_deletes_between(self, after: int, upto: int) -> list[Row]:
        return await self.all(
            "SELECT prefix, key, seq FROM store_vector_deletes WHERE seq > ? AND seq <= ?",
            [after, upto],
        )

    async def prune_store_vector_deletes(self, before: float) -> None:
        """Forget old deletion records; an index older than them reloads in full."""
        row = await self.one(
            "SELECT MAX(seq) AS seq FROM store_vector_deletes WHERE at < ?", [before]
        )
        if row is None or row["seq"] is None:
            return
        await self.run("DELETE FROM store_vector_deletes WHERE seq <= ?", [row["seq"]])
        await self.run(
            "UPDATE store_clock SET pruned_through = ? WHERE id = 1 AND pruned_through < ?",
            [row["seq"], row["seq"]],
        )
