"""The storage contract every dialect implements."""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.settings import StoreSettings, ThreadTtl

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from keel.storage.footprint import Footprint, VacuumReport
    from keel.storage.tx import Dialect, Tx
    from keel.store import KeelStore

# Called with a statement's duration in seconds (keel.metrics' query histogram).
QueryTimer = Callable[[float], None]
# Called with (channel, payload) for every notification another process sent.
Listener = Callable[[str, str], Awaitable[None]]
# Called with a thread's id once the transaction that deleted it has committed.
ThreadDeleted = Callable[[str], None]
log = logging.getLogger("keel.storage")


def exception_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (`raise ... from`), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of a dialect's numbered migrations, in order."""
    folder = resources.files("keel.storage").joinpath("migrations", dialect)
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(out)


class Storage(abc.ABC):
    """A database holding Keel's tables and LangGraph's checkpoints.

    `tx()` opens a write transaction and `read()` a read-only one; both yield a `Tx` whose named
    queries are the only SQL Keel runs. `checkpointer` and `store` (long-term memory) are bound to
    the same database. `shared` says whether other Keel processes may use the database at the
    same time (PostgreSQL); then `listen` delivers their notifications.
    """

    dialect: Dialect
    shared: bool
    checkpointer: BaseCheckpointSaver[Any]
    store: KeelStore
    # Set by `make_storage` from the settings' `store` section.
    store_settings: StoreSettings = StoreSettings()
    # `checkpointer.ttl`: the TTL stamped on threads created without one.
    thread_ttl: ThreadTtl = ThreadTtl()
    base_dir: Path = Path(".")

    def make_store(self) -> KeelStore:
        """The long-term memory store over this database (call once open, on the loop)."""
        from keel.store import KeelStore

        index = self.store_settings.index
        if index is None:
            return KeelStore(self, self.store_settings, None)
        from keel.embeddings import load_embedder

        return KeelStore(self, self.store_settings, load_embedder(index, self.base_dir))

    async def close_store(self) -> None:
        store = self.__dict__.get("store")
        if store is not None:
            await store.aclose()

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def tx(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    def statements(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        """Each statement commits on its own (no BEGIN/COMMIT round trips): for reads and for
        writes that are a single statement, like a claim."""
        return self.read()

    def on_thread_deleted(self, hook: ThreadDeleted) -> None:
        """Call `hook(thread_id)` after each committed transaction that deleted a thread (any
        path: DELETE, prune, an assistant's threads, the TTL sweep, a stateless run's end)."""
        self.__dict__.setdefault("_thread_hooks", []).append(hook)

    def committed(self, tx: Tx) -> None:
        """After `tx` committed: the thread-deleted hooks (their failures are logged: the
        deletion stands)."""
        hooks: list[ThreadDeleted] = self.__dict__.get("_thread_hooks", [])
        for thread_id in tx.deleted_threads if hooks else ():
            for hook in hooks:
                try:
                    hook(thread_id)
                except Exception:
                    log.exception("after deleting thread %s: a hook failed", thread_id)

    def record_queries(self, timer: QueryTimer) -> None:
        """Report each statement's latency to `timer` (PostgreSQL: a network round trip;
        SQLite's statements take microseconds and are not timed)."""
        return None

    def pool_stats(self) -> dict[str, int] | None:
        """The connection pool's use (PostgreSQL), None without a pool (SQLite)."""
        return None

    async def ping(self, within: float) -> None:
        """Raise `Unavailable` unless the database answers within `within` seconds."""
        async with self.read() as tx:
            await tx.one("SELECT 1 AS one")

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether `exc`, or an exception it was raised from, says that the database could not
        be reached (as opposed to a failure of the graph itself)."""
        from keel.errors import Unavailable

        return any(isinstance(e, Unavailable) for e in exception_chain(exc))

    async def reclaim(self) -> None:
        """After a sweep: give space freed by deletions back where the database needs it done
        (SQLite's incremental vacuum); PostgreSQL's autovacuum does it by itself."""
        return None

    async def footprint(self) -> Footprint:
        """The tables with their sizes and the database's size on disk (`keel db stats`)."""
        raise NotImplementedError

    async def vacuum(self) -> VacuumReport:
        """Give space back and tidy up (`keel db vacuum`); see each dialect."""
        raise NotImplementedError

    async def listen(self, channels: list[str], listener: Listener) -> None:
        """Deliver notifications on `channels` until cancelled (shared databases only)."""
        raise NotImplementedError
