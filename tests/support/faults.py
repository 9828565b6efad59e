"""The test side of Keel's fault points (keel/faults.py): arm a point for a thread, wait until a
run of that thread is held there, release it. Plus a direct look at a server's database."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg

# How long a server holds a run at a point at most: longer than any test may take (pytest-timeout
# is 120 s), so a hold never runs out while a test is still acting on the held run, however slow
# the machine. A test's holds end with the test (`release_all`), even when it fails.
HOLD = 600.0


class FaultPoints:
    """A fault directory shared with a `keel serve` started with `env()`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.armed: set[tuple[str, str]] = set()
        directory.mkdir(parents=True, exist_ok=True)

    def env(self, hold: float = HOLD) -> dict[str, str]:
        return {"KEEL_FAULTS": str(self.directory), "KEEL_FAULTS_HOLD": str(hold)}

    def _file(self, point: str, thread_id: str, suffix: str = "") -> Path:
        return self.directory / f"{point}.{thread_id}{suffix}"

    def arm(self, point: str, thread_id: str) -> None:
        self.armed.add((point, thread_id))
        self._file(point, thread_id).touch()

    async def held(self, point: str, thread_id: str, within: float = 60.0) -> str:
        """Wait until a run of the thread is held at the point; returns its run id."""
        marker = self._file(point, thread_id, ".held")
        deadline = time.monotonic() + within
        while not marker.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"no run of thread {thread_id} reached {point}")
            await asyncio.sleep(0.01)
        return marker.read_text()

    def release(self, point: str, thread_id: str) -> None:
        self._file(point, thread_id, ".go").touch()

    def release_all(self) -> None:
        """Release every point armed so far (at a test's end: no run stays held after it)."""
        for point, thread_id in self.armed:
            self.release(point, thread_id)
        self.armed.clear()


def query(database: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query (`?` placeholders) on a server's SQLite file or PostgreSQL database."""
    if database.startswith("sqlite:///"):
        conn = sqlite3.connect(database[len("sqlite:///") :], timeout=10)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()
    with psycopg.connect(database) as pg:
        return list(pg.execute(sql.replace("?", "%s").encode(), params).fetchall())


def leftovers(database: str, thread_id: str) -> dict[str, int]:
    """What a deleted thread left behind: its runs, their events, its checkpoints."""
    counts = {}
    for table in ("runs", "run_events", "checkpoints"):
        sql = f"SELECT count(*) FROM {table} WHERE thread_id=?"
        counts[table] = int(query(database, sql, (thread_id,))[0][0])
    return counts
