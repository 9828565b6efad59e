"""The worker registry (keel.worker.registry): one row per running worker pool, and the leases
its runs hold (`runs.worker_id`, `runs.lease_until`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.storage.queries.base import Queries, Row

WORKER_COLS = "worker_id, kind, host, pid, version, slots, beat_seconds, started_at, seen_at"
LEASE_COLS = (
    "r.run_id, r.thread_id, r.assistant_id, r.attempt, r.worker_id, r.lease_until, "
    "r.created_at, r.updated_at"
)


class WorkerQueries(Queries):
    async def put_worker(self, w: Row) -> None:
        """Insert the worker's row, or refresh its `seen_at` (a row pruned or lost meanwhile is
        written again)."""
        await self.run(
            f"INSERT INTO workers ({WORKER_COLS}) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (worker_id) DO UPDATE SET seen_at=excluded.seen_at",
            [
                w["worker_id"],
                w["kind"],
                w["host"],
                w["pid"],
                w["version"],
                w["slots"],
                w["beat_seconds"],
                w["started_at"],
                w["seen_at"],
            ],
        )

    async def delete_worker(self, worker_id: str) -> int:
        return await self.run("DELETE FROM workers WHERE worker_id=?", [worker_id])

    async def prune_workers(self, seen_before: float, keep: str) -> int:
        """Delete the rows of workers (but `keep`) last seen before `seen_before`."""
        return await self.run(
            "DELETE FROM workers WHERE seen_at<? AND worker_id<>?", [seen_before, keep]
        )

    async def list_workers(self) -> list[Row]:
        return await self.all(f"SELECT {WORKER_COLS} FROM workers ORDER BY started_at, worker_id")

    async def held_leases(self, where: str, params: Sequence[Any]) -> list[Row]:
        """The running runs held by a worker, on threads satisfying `where` (columns of `t`,
        the thread: an auth scope), oldest first."""
        return await self.all(
            f"SELECT {LEASE_COLS} FROM runs r JOIN threads t ON t.thread_id=r.thread_id "
            f"WHERE r.status='running' AND r.worker_id IS NOT NULL AND {where} "
            "ORDER BY r.created_at, r.run_id",
            list(params),
        )
