"""LangGraph's SQLite store, run inline on the event loop over Keel's connection.

Same reasoning as `checkpointer.py`: one `sqlite3` connection, called directly from the loop, so
store operations never interleave with Keel's own transactions.
"""

from __future__ import annotations

from collections.abc import Iterable

from langgraph.store.base import Op, Result
from langgraph.store.sqlite import SqliteStore


class KeelSqliteStore(SqliteStore):
    """`SqliteStore` with its async interface served inline (no thread pool)."""

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self.batch(ops)
