"""LangGraph's checkpointers, adapted to how Keel holds its database.

SQLite: LangGraph's saver, run inline on the event loop over Keel's connection.

SQLite calls on a local WAL file take microseconds; handing each one to a worker thread (as
`aiosqlite` does) costs more than the query itself. Keel therefore keeps one `sqlite3`
connection and calls it directly from the event loop. Storage transactions and checkpoint writes
never interleave because neither yields to the loop in the middle of a transaction. A sync node
runs in a worker thread, and a subgraph it invokes calls the saver's sync methods there: those
calls hop onto the event loop (as LangGraph's async Postgres saver does), so every statement on
the connection still runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from keel.errors import InvalidInput

# The checkpoint metadata keys LangGraph's SQLite saver can filter on.
FILTER_KEY = re.compile(r"[a-zA-Z0-9_.-]+")
T = TypeVar("T")
NUL_TEXT = "Text holding a NUL character (\\u0000) cannot be stored on PostgreSQL"


@contextlib.contextmanager
def nul_is_bad_input() -> Iterator[None]:
    """PostgreSQL's refusal of a NUL character in text (psycopg's own, or the server's for a
    `\\u0000` in JSON) is the client's bad input: 422, not a failure."""
    try:
        yield
    except psycopg.DataError as exc:
        if isinstance(exc, psycopg.errors.UntranslatableCharacter) or "NUL (0x00)" in str(exc):
            raise InvalidInput(NUL_TEXT) from exc
        raise


def with_thread_id(config: RunnableConfig, metadata: CheckpointMetadata) -> CheckpointMetadata:
    """Checkpoint metadata naming its thread, as the reference's checkpoints do (LangGraph's
    savers leave `thread_id` out); a thread copy rewrites it to the copy's id."""
    if "thread_id" in metadata:
        return metadata
    return {**metadata, "thread_id": config["configurable"]["thread_id"]}  # type: ignore[typeddict-unknown-key]


class KeelSqliteSaver(SqliteSaver):
    """`SqliteSaver` with its async interface served inline (no thread pool), and its sync
    interface moved onto the event loop when another thread calls it."""

    loop: asyncio.AbstractEventLoop | None = None  # the loop owning the connection, once open

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """`fn()` on the owning loop's thread: here when this is it (or no loop runs)."""
        loop = self.loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._on_loop(lambda: SqliteSaver.get_tuple(self, config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return iter(
            self._on_loop(
                lambda: [*SqliteSaver.list(self, config, filter=filter, before=before, limit=limit)]
            )
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stamped = with_thread_id(config, metadata)
        return self._on_loop(
            lambda: SqliteSaver.put(self, config, checkpoint, stamped, new_versions)
        )

    def delete_thread(self, thread_id: str) -> None:
        self._on_loop(lambda: SqliteSaver.delete_thread(self, thread_id))

    def get_delta_channel_history(self, **kwargs: Any) -> Any:
        return self._on_loop(lambda: SqliteSaver.get_delta_channel_history(self, **kwargs))

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
        for key in filter or {}:
            if not FILTER_KEY.fullmatch(key):  # LangGraph's saver raises ValueError: a 500
                raise InvalidInput(
                    f"metadata: unsupported filter key {key!r} (letters, digits, '_', '.', '-')"
                )
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
        self._on_loop(lambda: self._put_writes(config, writes, task_id, task_path))

    def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        if len(writes) > 1 and self.conn.in_transaction is False:
            self.conn.execute("BEGIN")
        super().put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(self, **kwargs: Any) -> Any:
        return self.get_delta_channel_history(**kwargs)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class KeelPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` over Keel's pool, without its process-wide lock or thread hops.

    The saver serialises every call behind one `asyncio.Lock`, which a single shared connection
    needs; over a pool each call has its own connection, so concurrent runs need not queue. It
    also serialises values in a worker thread on every put; for the small values of a typical
    step that hop costs more than the work, so Keel's puts serialise inline (as the SQLite
    saver does). Same tables, same rows: it passes the conformance suite.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.lock = contextlib.nullcontext()  # type: ignore[assignment]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        with nul_is_bad_input():  # a checkpoint namespace or id from a request
            return await super().aget_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        with nul_is_bad_input():  # a history filter from a request
            async for item in super().alist(config, filter=filter, before=before, limit=limit):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf["checkpoint_ns"]
        inline: dict[str, Any] = {}
        blobs: dict[str, Any] = {}
        for key, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                blobs[key], inline[key] = value, True  # the row marks where the blob is
            elif value is None or isinstance(value, (str, int, float, bool)):
                inline[key] = value
            else:
                blobs[key] = value
        versions = {k: v for k, v in new_versions.items() if k in blobs}
        blob_rows = self._dump_blobs(thread_id, ns, blobs, versions)
        row = (
            thread_id,
            ns,
            checkpoint["id"],
            conf.get("checkpoint_id"),
            Jsonb({**checkpoint, "channel_values": inline}),
            Jsonb(get_serializable_checkpoint_metadata(config, with_thread_id(config, metadata))),
        )
        async with self._cursor(pipeline=True) as cur:
            if blob_rows:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blob_rows)
            await cur.execute(self.UPSERT_CHECKPOINTS_SQL, row)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        sql = self.UPSERT_CHECKPOINT_WRITES_SQL if special else self.INSERT_CHECKPOINT_WRITES_SQL
        rows = self._dump_writes(
            conf["thread_id"], conf["checkpoint_ns"], conf["checkpoint_id"], task_id, task_path,
            writes,
        )  # fmt: skip
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(sql, rows)
