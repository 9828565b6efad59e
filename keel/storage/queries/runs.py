"""Runs (the queue) and their event logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.storage.queries.base import Queries, Row, j


class RunQueries(Queries):
    async def insert_run(self, r: Row) -> None:
        """Insert a run of an existing thread, numbered after every run the thread ever had."""
        await self.run(
            "UPDATE threads SET runs_made = runs_made + 1 WHERE thread_id=?", [r["thread_id"]]
        )
        await self.run(
            "INSERT INTO runs (run_id, thread_id, assistant_id, created_at, updated_at, status, "
            "metadata, kwargs, multitask_strategy, temporary, org, lane, attempt, thread_ordinal) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,"
            "(SELECT runs_made FROM threads WHERE thread_id=?))",
            [
                r["run_id"],
                r["thread_id"],
                r["assistant_id"],
                r["created_at"],
                r["updated_at"],
                r["status"],
                j(r["metadata"]),
                j(r["kwargs"]),
                r["multitask_strategy"],
                1 if r.get("temporary") else 0,
                r.get("org"),
                r.get("lane", 0),
                r["thread_id"],
            ],
        )

    async def get_run(self, run_id: str) -> Row | None:
        return await self.one("SELECT * FROM runs WHERE run_id=?", [run_id])

    async def list_runs(
        self, thread_id: str, status: str | None, limit: int, offset: int
    ) -> list[Row]:
        where, params = "thread_id=?", [thread_id]
        if status:
            where += " AND status=?"
            params.append(status)
        return await self.all(
            f"SELECT * FROM runs WHERE {where} ORDER BY created_at DESC, run_id DESC "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def thread_run_ids(self, thread_id: str) -> list[str]:
        rows = await self.all(
            "SELECT run_id FROM runs WHERE thread_id=? ORDER BY created_at, run_id", [thread_id]
        )
        return [r["run_id"] for r in rows]

    async def active_runs(self, thread_id: str) -> list[Row]:
        return await self.all(
            "SELECT * FROM runs WHERE thread_id=? AND status IN ('pending','running') "
            "ORDER BY created_at",
            [thread_id],
        )

    async def runs_by_status(self, status: Sequence[str]) -> list[Row]:
        marks = ",".join("?" * len(status))
        return await self.all(f"SELECT * FROM runs WHERE status IN ({marks})", list(status))

    async def delete_run(self, run_id: str) -> int:
        await self.run("DELETE FROM run_events WHERE run_id=?", [run_id])
        await self.run("DELETE FROM webhook_deliveries WHERE run_id=?", [run_id])
        return await self.run("DELETE FROM runs WHERE run_id=?", [run_id])

    async def delete_pending_run(self, run_id: str) -> bool:
        """Delete a run that is still pending (not if a worker claimed it meanwhile)."""
        if await self.run("DELETE FROM runs WHERE run_id=? AND status='pending'", [run_id]) != 1:
            return False
        await self.run("DELETE FROM run_events WHERE run_id=?", [run_id])
        return True

    async def delete_owned_run(self, run_id: str, worker_id: str) -> bool:
        """Delete a run (a rollback) while `worker_id` still executes it."""
        deleted = await self.run(
            "DELETE FROM runs WHERE run_id=? AND worker_id=? AND status='running'",
            [run_id, worker_id],
        )
        if deleted != 1:
            return False
        await self.run("DELETE FROM run_events WHERE run_id=?", [run_id])
        return True

    async def interrupt_pending(self, run_id: str, now: str) -> bool:
        """Mark a run that is still pending interrupted (not if a worker claimed it meanwhile)."""
        changed = await self.run(
            "UPDATE runs SET status='interrupted', updated_at=? "
            "WHERE run_id=? AND status='pending'",
            [now, run_id],
        )
        return changed == 1

    async def set_run_status(self, run_id: str, status: str, now: str) -> None:
        await self.run(
            "UPDATE runs SET status=?, updated_at=?, worker_id=NULL, lease_until=NULL "
            "WHERE run_id=?",
            [status, now, run_id],
        )

    async def set_cancel(self, run_id: str, action: str) -> None:
        await self.run("UPDATE runs SET cancel_action=? WHERE run_id=?", [action, run_id])

    async def claim_next(
        self, worker_id: str, now_iso: str, lease_until: float, max_lane: int = 1
    ) -> Row | None:
        """Take the due pending run of the lowest lane (interactive first, keel.lanes), oldest
        first, on a thread with nothing running, up to lane `max_lane` (one statement)."""
        rows = await self.all(
            "UPDATE runs SET status='running', worker_id=?, lease_until=?, attempt=attempt+1, "
            "updated_at=? WHERE run_id = (SELECT r.run_id FROM runs r WHERE r.status='pending' "
            "AND r.lane<=? AND r.created_at<=? AND NOT EXISTS (SELECT 1 FROM runs o WHERE "
            "o.thread_id=r.thread_id AND o.status='running') "
            "ORDER BY r.lane, r.created_at, r.run_id "
            f"LIMIT 1 {self.dialect.skip_locked}) RETURNING *",
            [worker_id, lease_until, now_iso, max_lane, now_iso],
        )
        return rows[0] if rows else None

    async def next_pending_at(self, after: str) -> str | None:
        """When the first pending run created for later than `after` becomes due."""
        row = await self.one(
            "SELECT MIN(created_at) AS t FROM runs WHERE status='pending' AND created_at>?",
            [after],
        )
        return row["t"] if row else None

    async def renew_leases(self, worker_id: str, run_ids: list[str], until: float) -> list[Row]:
        """Extend the leases of a worker's runs; return their cancel flags."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        await self.run(
            f"UPDATE runs SET lease_until=? WHERE worker_id=? AND status='running' "
            f"AND run_id IN ({marks})",
            [until, worker_id, *run_ids],
        )
        return await self.all(
            f"SELECT run_id, cancel_action, status, worker_id FROM runs WHERE run_id IN ({marks})",
            run_ids,
        )

    async def requeue_expired(
        self, now: float, now_iso: str, all_running: bool, keep: Sequence[str] = ()
    ) -> list[Row]:
        """Put runs whose lease expired (or every running run) back to pending, except `keep`
        (runs this process is executing right now)."""
        conds: list[str] = ["status='running'"]
        params: list[Any] = [now_iso]
        if not all_running:
            conds.append("lease_until < ?")
            params.append(now)
        if keep:
            conds.append(f"run_id NOT IN ({','.join('?' * len(keep))})")
            params.extend(keep)
        return await self.all(
            "UPDATE runs SET status='pending', worker_id=NULL, lease_until=NULL, updated_at=? "
            f"WHERE {' AND '.join(conds)} RETURNING *",
            params,
        )

    async def release_run(self, run_id: str, worker_id: str, now_iso: str) -> None:
        """Hand a run this worker holds back to the queue (graceful shutdown)."""
        await self.run(
            "UPDATE runs SET status='pending', worker_id=NULL, lease_until=NULL, updated_at=? "
            "WHERE run_id=? AND worker_id=? AND status='running'",
            [now_iso, run_id, worker_id],
        )

    async def finish_run(
        self, run_id: str, status: str, result: Any, now: str, worker_id: str | None = None
    ) -> bool:
        """Record a run's outcome; with `worker_id`, only while that worker still holds it."""
        sql = (
            "UPDATE runs SET status=?, result=?, updated_at=?, worker_id=NULL, lease_until=NULL "
            "WHERE run_id=?"
        )
        params = [status, None if result is None else j(result), now, run_id]
        if worker_id is not None:
            sql += " AND worker_id=? AND status='running'"
            params.append(worker_id)
        return await self.run(sql, params) == 1

    async def queue_gauges(self, now: float, now_iso: str) -> list[Row]:
        """Pending and running runs per status and graph, for /metrics (keel.metrics.database):
        how many, how many are due, the oldest due one, how many hold an expired lease."""
        return await self.all(
            "SELECT r.status AS status, a.graph_id AS graph_id, COUNT(*) AS n, "
            "SUM(CASE WHEN r.status='pending' AND r.created_at<=? THEN 1 ELSE 0 END) AS due, "
            "MIN(CASE WHEN r.status='pending' AND r.created_at<=? THEN r.created_at END) "
            "AS oldest_due, "
            "SUM(CASE WHEN r.status='running' AND r.lease_until<? THEN 1 ELSE 0 END) AS overdue "
            "FROM runs r LEFT JOIN assistants a ON a.assistant_id=r.assistant_id "
            "WHERE r.status IN ('pending','running') GROUP BY r.status, a.graph_id",
            [now_iso, now_iso, now],
        )

    # -------------------------------------------------------------------- events
    async def append_events(self, rows: list[tuple[str, int, str, str, bytes]]) -> None:
        await self.many(
            "INSERT INTO run_events (run_id, seq, thread_id, event, data) "
            "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            rows,
        )

    async def read_events(self, run_id: str, after: int) -> list[Row]:
        return await self.all(
            "SELECT seq, event, data FROM run_events WHERE run_id=? AND seq>? ORDER BY seq",
            [run_id, after],
        )

    async def runs_progress(self, run_ids: Sequence[str]) -> list[Row]:
        """Status and last logged event id of each run (one statement for many runs)."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        return await self.all(
            "SELECT r.run_id, r.status, (SELECT MAX(e.seq) FROM run_events e WHERE "
            f"e.run_id=r.run_id) AS last_seq FROM runs r WHERE r.run_id IN ({marks})",
            list(run_ids),
        )

    async def max_event_seq(self, run_id: str) -> int:
        row = await self.one("SELECT MAX(seq) AS s FROM run_events WHERE run_id=?", [run_id])
        return int(row["s"]) if row and row["s"] is not None else 0
