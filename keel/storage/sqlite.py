"""SQLite dialect: one file, WAL, one connection shared with the checkpointer.

All statements run synchronously on the event-loop thread over one `sqlite3` connection (see
`checkpointer.py` for why). A transaction never awaits anything real in its body, so no other
coroutine can slip a statement into it; the asyncio lock is a guard should that ever change.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from keel.errors import Conflict, Unavailable
from keel.storage.base import Storage, migration_files
from keel.storage.checkpointer import KeelSqliteSaver
from keel.storage.footprint import Footprint, TableSize, VacuumReport
from keel.storage.tx import Dialect, Row, Tx, decode_row

log = logging.getLogger("keel.storage")
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for incremental vacuum
VACUUM_MODES = {0: "none", 1: "full", INCREMENTAL: "incremental"}
RECLAIM_SLACK_PAGES = 256
RECLAIM_STEP_PAGES = 1024
TABLES = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
# Each table's pages with its indexes' pages (the `dbstat` table, if SQLite was built with it).
TABLE_BYTES = (
    "SELECT m.tbl_name, SUM(s.pgsize) FROM (SELECT name, pgsize FROM dbstat WHERE aggregate=1) s "
    "JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name"
)


class SqliteTx(Tx):
    """Named queries over the one `sqlite3` connection, called inline."""

    dialect = Dialect()
    writes_table = "writes"

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

    # ------------------------------------------------ SqliteSaver's tables
    async def delete_thread_checkpoints(self, thread_id: str) -> None:
        await self.run("DELETE FROM checkpoints WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM writes WHERE thread_id=?", [thread_id])

    async def copy_checkpoints(self, source: str, target: str) -> None:
        # The metadata's `thread_id` (see checkpointer.py) names the copy.
        await self.run(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, type, checkpoint, "
            "CASE WHEN json_extract(CAST(metadata AS TEXT), '$.thread_id') IS NULL THEN metadata "
            "ELSE CAST(json_set(CAST(metadata AS TEXT), '$.thread_id', ?) AS BLOB) END "
            "FROM checkpoints WHERE thread_id=?",
            [target, target, source],
        )
        await self.run(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, "
            "idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, "
            "task_path, idx, channel, type, value FROM writes WHERE thread_id=?",
            [target, source],
        )


class SqliteStorage(Storage):
    dialect = SqliteTx.dialect
    shared = False
    # False for `keel keys` and `keel audit`: when a server holds the file they share it (WAL).
    exclusive = True

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock = asyncio.Lock()
        self.checkpointer: KeelSqliteSaver

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_file_lock()
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # Takes effect on a new file (before its first table): sweeps can then give pages back
        # (`reclaim`). A file made by an older Keel reuses its free pages; `keel db vacuum`
        # converts it.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        self.checkpointer = KeelSqliteSaver(conn)
        self.checkpointer.loop = asyncio.get_running_loop()
        self.checkpointer.setup()
        self._migrate()
        self.store = self.make_store()
        if self.exclusive and self.auto_vacuum() != "incremental":
            log.info(
                "SQLite database %s predates incremental auto-vacuum: space freed by sweeps is "
                "reused but not given back to the file system; `keel db vacuum` (with the server "
                "stopped) converts it",
                self.path,
            )

    def _take_file_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not self.exclusive:
                return  # the server holding the lock has applied the migrations
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
        for version, name, sql in migration_files("sqlite"):
            if version in done:
                continue
            conn.executescript(
                f"BEGIN;\n{sql}\nINSERT INTO keel_migrations VALUES ({version}, '{name}');\nCOMMIT;"
            )

    async def reclaim(self, slack: bool = True) -> None:
        """Return free pages beyond a slack (a tenth of the file, at least 1 MiB, kept for reuse;
        none without `slack`) to the file system, a few MiB per statement so no transaction waits
        long."""
        while True:
            async with self._lock:
                conn = self.conn
                if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
                    return
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                excess = free - (max(RECLAIM_SLACK_PAGES, pages // 10) if slack else 0)
                if excess <= 0:
                    return
                step = min(excess, RECLAIM_STEP_PAGES)
                conn.execute(f"PRAGMA incremental_vacuum({step})").fetchall()
            await asyncio.sleep(0)

    def _pragma(self, name: str) -> int:
        return int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])

    def auto_vacuum(self) -> str:
        """none, full or incremental (none: a file made before Keel turned incremental on)."""
        return VACUUM_MODES.get(self._pragma("auto_vacuum"), "unknown")

    @property
    def holds_file(self) -> bool:
        """Whether this process holds the file's lock: no Keel server shares it."""
        return self._lock_fd is not None

    def disk_bytes(self) -> tuple[int, int]:
        """The sizes of the file and of its write-ahead log."""
        return _size(self.path), _size(self.path.with_name(self.path.name + "-wal"))

    async def footprint(self) -> Footprint:
        async with self._lock:
            conn = self.conn
            names = sorted(row[0] for row in conn.execute(TABLES))
            try:
                sizes: dict[str, int] | None = dict(conn.execute(TABLE_BYTES).fetchall())
            except sqlite3.OperationalError:  # SQLite built without `dbstat`: bytes unknown
                sizes = None
            free = self._pragma("freelist_count") * self._pragma("page_size")
            mode = self.auto_vacuum()
        file, wal = self.disk_bytes()
        tables = [TableSize(n, None if sizes is None else int(sizes.get(n, 0))) for n in names]
        return Footprint(tables, file + wal, free_bytes=free, wal_bytes=wal, auto_vacuum=mode)

    async def vacuum(self) -> VacuumReport:
        """Convert a file made before incremental auto-vacuum (VACUUM rewrites it, so only with
        the file to this process) and give all its free pages back to the file system."""
        before = sum(self.disk_bytes())
        done: list[str] = []
        async with self._lock:
            conn = self.conn
            converting = self.auto_vacuum() != "incremental"
            if converting and not self.holds_file:
                raise Unavailable(
                    f"SQLite database {str(self.path)!r} is not in incremental auto-vacuum mode; "
                    "converting it rewrites the whole file, which a running server must not "
                    "share: stop the Keel server using it, then run `keel db vacuum` again"
                )
            free = self._pragma("freelist_count")
            if converting:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("VACUUM")
                done.append("converted to incremental auto-vacuum (VACUUM rewrote the file)")
        if not converting:
            await self.reclaim(slack=False)
        async with self._lock:
            given = free - self._pragma("freelist_count")
            done.append(f"gave {given} free pages back to the file system")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return VacuumReport(before, sum(self.disk_bytes()), done)

    def data_version(self) -> int:
        """Changes whenever another connection (another process) committed to the file."""
        row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Unavailable("storage is not open")
        return self._conn

    async def close(self) -> None:
        await self.close_store()
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
            tx = SqliteTx(conn)
            try:
                yield tx
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(f"conflicting change: {exc}") from exc
                raise
            conn.execute("COMMIT")
        self.committed(tx)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Reads outside any transaction (each statement sees committed data)."""
        async with self._lock:
            yield SqliteTx(self.conn)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
