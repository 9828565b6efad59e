"""LangGraph's stores over Keel's database (SQLite: on the event loop over Keel's connection).

Same reasoning as `checkpointer.py`: one `sqlite3` connection, called directly from the loop, so
store operations never interleave with Keel's own transactions. Sync graph nodes run in worker
threads; their store calls are handed to the loop thread and awaited there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Iterable

from langgraph.store.base import Op, Result
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite import SqliteStore


class KeelSqliteStore(SqliteStore):
    """`SqliteStore` whose every statement runs on the event-loop thread (no thread pool)."""

    def __init__(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(conn)
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if threading.get_ident() == self._loop_thread or self._loop.is_closed():
            return super().batch(ops)
        future: concurrent.futures.Future[list[Result]] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._batch_into, ops, future)
        return future.result()

    def _batch_into(self, ops: list[Op], future: concurrent.futures.Future[list[Result]]) -> None:
        try:
            future.set_result(super().batch(ops))
        except BaseException as exc:
            future.set_exception(exc)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self.batch(ops)


class KeelPostgresStore(AsyncPostgresStore):
    """`AsyncPostgresStore` over Keel's connection pool."""
