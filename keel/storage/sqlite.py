"""SQLite dialect: one file, WAL, one connection shared with the checkpointer.

Every statement runs on a single aiosqlite connection guarded by one asyncio lock that the
checkpointer shares, so Keel's own transactions and LangGraph's checkpoint writes never
interleave and never fight over the file's write lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from keel.errors import Unavailable
from keel.storage.base import Storage
from keel.storage.checkpointer import KeelSqliteSaver
from keel.storage.tx import Tx

class SqliteStorage(Storage):
    dialect = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: aiosqlite.Connection | None = None
        self._lock_fd: int | None = None
        self.checkpointer: KeelSqliteSaver

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_file_lock()
        conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        self.checkpointer = KeelSqliteSaver(conn)
        await self.checkpointer.setup()
        await self._migrate()

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

    async def _migrate(self) -> None:
        conn = self.conn
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS keel_migrations (version INTEGER PRIMARY KEY, name TEXT)"
        )
        async with conn.execute("SELECT version FROM keel_migrations") as cur:
            done = {row[0] for row in await cur.fetchall()}
        folder = resources.files("keel.storage").joinpath("migrations", "sqlite")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            version = int(entry.name.split("_", 1)[0])
            if version in done:
                continue
            await conn.executescript(
                "BEGIN;\n"
                + entry.read_text()
                + f"\nINSERT INTO keel_migrations VALUES ({version}, '{entry.name}');\nCOMMIT;"
            )

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise Unavailable("storage is not open")
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            async with self.checkpointer.lock:
                await self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT), serialised with checkpoint writes."""
        async with self.checkpointer.lock:
            conn = self.conn
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Consistent reads without a write lock."""
        async with self.checkpointer.lock:
            conn = self.conn
            await conn.execute("BEGIN")
            try:
                yield Tx(conn)
            finally:
                await conn.execute("COMMIT")
