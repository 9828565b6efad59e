"""SQLite dialect: one file, WAL, one connection shared with the checkpointer.

All statements run synchronously on the event-loop thread over one `sqlite3` connection (see
`checkpointer.py` for why). A transaction never awaits anything real in its body, so no other
coroutine can slip a statement into it; the asyncio lock is a guard should that ever change.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from keel.errors import Unavailable
from keel.storage.base import Storage
from keel.storage.checkpointer import KeelSqliteSaver
from keel.storage.store import KeelSqliteStore
from keel.storage.tx import Tx


class SqliteStorage(Storage):
    dialect = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock = asyncio.Lock()
        self.checkpointer: KeelSqliteSaver
        self.store: KeelSqliteStore

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_file_lock()
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        self.checkpointer = KeelSqliteSaver(conn)
        self.checkpointer.setup()
        self.store = KeelSqliteStore(conn, asyncio.get_running_loop())
        self.store.setup()
        self._migrate()

    def _take_file_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(
                f"SQLite database {str(self.path)!r} is in use by another Keel process; "
                "SQLite mode runs one server process per file (use PostgreSQL to scale out)"
            ) from None
        self._lock_fd = fd

    def _migrate(self) -> None:
        conn = self.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS keel_migrations (version INTEGER PRIMARY KEY, name TEXT)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM keel_migrations")}
        folder = resources.files("keel.storage").joinpath("migrations", "sqlite")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            version = int(entry.name.split("_", 1)[0])
            if version in done:
                continue
            conn.executescript(
                "BEGIN;\n"
                + entry.read_text()
                + f"\nINSERT INTO keel_migrations VALUES ({version}, '{entry.name}');\nCOMMIT;"
            )

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Unavailable("storage is not open")
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            async with self._lock:
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        async with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Reads outside any transaction (each statement sees committed data)."""
        async with self._lock:
            yield Tx(self.conn)
