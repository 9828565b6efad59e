"""LangGraph's checkpointers, adapted to how Keel holds its database.

SQLite: LangGraph's saver, run inline on the event loop over Keel's connection.

SQLite calls on a local WAL file take microseconds; handing each one to a worker thread (as
`aiosqlite` does) costs more than the query itself. Keel therefore keeps one `sqlite3`
connection and calls it directly from the event loop. Storage transactions and checkpoint writes
never interleave because neither yields to the loop in the middle of a transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg_pool import AsyncConnectionPool


class KeelSqliteSaver(SqliteSaver):
    """`SqliteSaver` with its async interface served inline (no thread pool)."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # Materialise first: the sync generator holds the saver's lock while it yields.
        for item in list(self.list(config, filter=filter, before=before, limit=limit)):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # One commit for all of a task's writes: the connection is in autocommit mode, where
        # `executemany` would otherwise commit (and append to the WAL) once per row. The
        # parent's cursor context commits this transaction when it is done.
        if len(writes) > 1 and self.conn.in_transaction is False:
            self.conn.execute("BEGIN")
        super().put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(self, **kwargs: Any) -> Any:
        return self.get_delta_channel_history(**kwargs)


class KeelPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` over Keel's pool, without its process-wide lock.

    The saver serialises every call behind one `asyncio.Lock`, which a single shared connection
    needs; over a pool each call has its own connection, so concurrent runs need not queue.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.lock = contextlib.nullcontext()  # type: ignore[assignment]
