"""What the sweeper reads and removes: expired threads, old event logs, finished stateless runs,
thread-stream events (see `keel.retention.sweeps`). Every statement touches one small batch."""

from __future__ import annotations

from collections.abc import Sequence

from keel.storage.queries.base import Queries, Row

FINISHED = "('success','error','timeout','interrupted','cancelled')"


class RetentionQueries(Queries):
    # ------------------------------------------------------------------ threads
    async def expired_threads(self, now: float, limit: int) -> list[Row]:
        """Threads whose TTL action is due and that no run holds, soonest first."""
        return await self.all(
            "SELECT thread_id FROM threads WHERE expires_at <= ? AND status <> 'busy' "
            "ORDER BY expires_at LIMIT ?",
            [now, limit],
        )

    async def due_thread(self, thread_id: str, now: float) -> Row | None:
        """The thread if its TTL action is still due and no run is pending or running on it
        (one may have started since it was listed; hold `lock_thread` first)."""
        return await self.one(
            "SELECT thread_id, ttl FROM threads t WHERE thread_id=? AND expires_at <= ? AND "
            "status <> 'busy' AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id=t.thread_id "
            "AND r.status IN ('pending','running'))",
            [thread_id, now],
        )

    async def disarm_thread(self, thread_id: str) -> None:
        """Nothing is due on the thread until it changes again (after a keep_latest prune)."""
        await self.run("UPDATE threads SET expires_at=NULL WHERE thread_id=?", [thread_id])

    async def count_expired_threads(self, now: float) -> list[Row]:
        """How many expired threads per strategy (`keel db stats`)."""
        return await self.all(
            "SELECT ttl, COUNT(*) AS n FROM threads WHERE expires_at <= ? AND status <> 'busy' "
            "GROUP BY ttl",
            [now],
        )

    # --------------------------------------------------------------- event logs
    async def runs_with_old_events(self, before: str, limit: int) -> list[str]:
        """Finished runs that ended before `before` and still have their event log, locked
        (PostgreSQL: rows another sweeping process holds are skipped, so sweeps never wait for
        or deadlock with each other)."""
        rows = await self.all(
            "SELECT run_id FROM runs WHERE events_swept_at IS NULL AND updated_at < ? AND "
            f"status IN {FINISHED} ORDER BY updated_at LIMIT ? {self.dialect.skip_locked}",
            [before, limit],
        )
        return [r["run_id"] for r in rows]

    async def count_runs_with_old_events(self, before: str, now: float) -> int:
        """Those the log sweep would take as of `now`: not the runs of threads the same sweep
        deletes first (with their runs)."""
        strategy = self.dialect.json_text("t.ttl", "strategy")
        row = await self.one(
            "SELECT COUNT(*) AS n FROM runs r WHERE r.events_swept_at IS NULL AND "
            f"r.updated_at < ? AND r.status IN {FINISHED} AND NOT EXISTS (SELECT 1 FROM threads "
            "t WHERE t.thread_id = r.thread_id AND t.expires_at <= ? AND t.status <> 'busy' AND "
            f"COALESCE({strategy}, 'delete') <> 'keep_latest')",
            [before, now],
        )
        return int(row["n"]) if row else 0

    async def drop_run_events(self, run_ids: Sequence[str], now: str) -> int:
        """Remove the runs' event logs and record when; returns how many events went."""
        marks = ",".join("?" * len(run_ids))
        gone = await self.run(f"DELETE FROM run_events WHERE run_id IN ({marks})", list(run_ids))
        await self.run(
            f"UPDATE runs SET events_swept_at=? WHERE run_id IN ({marks})", [now, *run_ids]
        )
        return gone

    # ----------------------------------------------------------- stateless runs
    async def sweep_temporary_runs(self, before: str, limit: int) -> int:
        """Forget up to `limit` finished stateless runs (kept a while after their thread was
        deleted, for waiters and reconnecting clients); returns how many."""
        rows = await self.all(
            f"SELECT run_id FROM runs WHERE temporary=1 AND updated_at<? AND status IN {FINISHED} "
            # A stateless run whose webhook is still being delivered stays until it is done.
            "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.run_id=runs.run_id AND "
            f"w.status='pending') LIMIT ? {self.dialect.skip_locked}",
            [before, limit],
        )
        ids = [r["run_id"] for r in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            await self.run(f"DELETE FROM run_events WHERE run_id IN ({marks})", ids)
            await self.run(f"DELETE FROM webhook_deliveries WHERE run_id IN ({marks})", ids)
            await self.run(f"DELETE FROM runs WHERE run_id IN ({marks})", ids)
        return len(ids)

    async def count_temporary_runs(self, before: str) -> int:
        row = await self.one(
            "SELECT COUNT(*) AS n FROM runs WHERE temporary=1 AND updated_at<? AND status IN "
            f"{FINISHED}",
            [before],
        )
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------ thread events
    async def sweep_thread_events(self, before: str) -> int:
        return await self.run("DELETE FROM thread_events WHERE created_at<?", [before])

    async def count_thread_events(self, before: str) -> int:
        row = await self.one("SELECT COUNT(*) AS n FROM thread_events WHERE created_at<?", [before])
        return int(row["n"]) if row else 0
