"""Threads (their checkpoint rows are the dialect's: see `sqlite.py`, `postgres.py`)."""

from __future__ import annotations

from typing import Any

from keel import clock
from keel.storage.queries.base import Queries, Row, j

# Every change to a thread re-arms its TTL: the action is due `ttl_minutes` after it (NULL
# arithmetic leaves threads without a TTL alone). The one parameter is the change's epoch time.
REARM = "expires_at=? + ttl_minutes*60"


def ttl_minutes(ttl: Row | None) -> float | None:
    return None if ttl is None else float(ttl["ttl"])


def _expiry(now: str, ttl: Row | None) -> float | None:
    return None if ttl is None else clock.parse(now) + float(ttl["ttl"]) * 60


class ThreadQueries(Queries):
    @property
    def deleted_threads(self) -> list[str]:
        """Threads this transaction deleted: once it commits, the storage's thread-deleted
        hooks run for each (`Storage.committed`: a workspace removed, never on a rollback)."""
        got: list[str] | None = self.__dict__.get("_deleted_threads")
        if got is None:
            got = self.__dict__["_deleted_threads"] = []
        return got

    async def insert_thread(self, t: Row) -> None:
        await self.run(
            "INSERT INTO threads (thread_id, created_at, updated_at, state_updated_at, metadata, "
            'config, status, "values", interrupts, error, ttl, org, ttl_minutes, expires_at) '
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                t["thread_id"],
                t["created_at"],
                t["updated_at"],
                t.get("state_updated_at"),
                j(t["metadata"]),
                j(t.get("config") or {}),
                t["status"],
                None if t.get("values") is None else j(t["values"]),
                j(t.get("interrupts") or {}),
                None if t.get("error") is None else j(t["error"]),
                None if t.get("ttl") is None else j(t["ttl"]),
                t.get("org"),
                ttl_minutes(t.get("ttl")),
                _expiry(t["updated_at"], t.get("ttl")),
            ],
        )

    async def get_thread(self, thread_id: str, lock: bool = False) -> Row | None:
        """The thread; with `lock`, held until the transaction ends (see `lock_thread`)."""
        held = f" {self.dialect.for_update}" if lock else ""
        return await self.one(f"SELECT * FROM threads WHERE thread_id=?{held}", [thread_id])

    async def get_thread_in(self, thread_id: str, where: str, params: list[Any]) -> Row | None:
        """The thread if it satisfies `where` (an auth scope's SQL)."""
        return await self.one(
            f"SELECT * FROM threads WHERE thread_id=? AND {where}", [thread_id, *params]
        )

    async def update_thread_meta(
        self, thread_id: str, metadata: Row, ttl: Row | None, now: str
    ) -> None:
        await self.run(
            "UPDATE threads SET metadata=?, ttl=COALESCE(?, ttl), "
            "ttl_minutes=COALESCE(?, ttl_minutes), updated_at=?, "
            "expires_at=? + COALESCE(?, ttl_minutes)*60 WHERE thread_id=?",
            [
                j(metadata),
                None if ttl is None else j(ttl),
                ttl_minutes(ttl),
                now,
                clock.parse(now),
                ttl_minutes(ttl),
                thread_id,
            ],
        )

    async def mark_thread_busy(self, thread_id: str, metadata: Row, config: Row, now: str) -> None:
        await self.run(
            f"UPDATE threads SET status='busy', metadata=?, config=?, updated_at=?, {REARM} "
            "WHERE thread_id=?",
            [j(metadata), j(config), now, clock.parse(now), thread_id],
        )

    async def set_thread_status(self, thread_id: str, status: str, now: str) -> None:
        await self.run(
            f"UPDATE threads SET status=?, updated_at=?, {REARM} WHERE thread_id=?",
            [status, now, clock.parse(now), thread_id],
        )

    async def set_thread_state(
        self,
        thread_id: str,
        *,
        status: str,
        values: Any,
        interrupts: Row,
        error: Any,
        now: str,
    ) -> None:
        await self.run(
            'UPDATE threads SET status=?, "values"=?, interrupts=?, error=?, updated_at=?, '
            f"state_updated_at=?, {REARM} WHERE thread_id=?",
            [
                status,
                None if values is None else j(values),
                j(interrupts),
                None if error is None else j(error),
                now,
                now,
                clock.parse(now),
                thread_id,
            ],
        )

    async def lock_thread(self, thread_id: str) -> None:
        """Hold the thread's row until the transaction ends. Every transaction that decides a
        thread's status from its runs takes this first (thread, then runs: no deadlock), so
        two of them never decide on what the other is changing."""
        await self.one(
            f"SELECT thread_id FROM threads WHERE thread_id=? {self.dialect.for_update}",
            [thread_id],
        )

    async def delete_thread(self, thread_id: str, keep_runs: bool = False) -> int:
        """Delete a thread with everything on it; `keep_runs` leaves its runs and their event
        logs (a finished stateless run's result and events, for waiters in other processes,
        until the sweeper forgets them: `keel.retention.sweeps`)."""
        await self.lock_thread(thread_id)
        if not keep_runs:
            await self.run("DELETE FROM run_events WHERE thread_id=?", [thread_id])
            await self.run("DELETE FROM webhook_deliveries WHERE thread_id=?", [thread_id])
            await self.run("DELETE FROM runs WHERE thread_id=?", [thread_id])
        await self.delete_thread_checkpoints(thread_id)
        await self.run("DELETE FROM crons WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM trigger_states WHERE subject=?", [thread_id])
        await self.run("DELETE FROM workspaces WHERE thread_id=?", [thread_id])
        self.deleted_threads.append(thread_id)
        return await self.run("DELETE FROM threads WHERE thread_id=?", [thread_id])

    async def existing_threads(self, thread_ids: list[str]) -> set[str]:
        """Which of `thread_ids` are threads (any organisation)."""
        if not thread_ids:
            return set()
        marks = ",".join("?" * len(thread_ids))
        rows = await self.all(
            f"SELECT thread_id FROM threads WHERE thread_id IN ({marks})", list(thread_ids)
        )
        return {str(r["thread_id"]) for r in rows}

    async def search_threads(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT * FROM threads WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def insert_thread_event(
        self, thread_id: str, event_id: str, event: str, data: bytes, now: str
    ) -> None:
        await self.run(
            "INSERT INTO thread_events (thread_id, event_id, event, data, created_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            [thread_id, event_id, event, data, now],
        )

    async def get_thread_event(self, thread_id: str, event_id: str) -> Row | None:
        return await self.one(
            "SELECT event, data FROM thread_events WHERE thread_id=? AND event_id=?",
            [thread_id, event_id],
        )

    # LangGraph's checkpoint tables: `checkpoints` is alike in both savers; the writes table's
    # name and the rest differ, so each dialect's Tx names it and implements what differs.
    writes_table: str

    async def delete_thread_checkpoints(self, thread_id: str) -> None:
        raise NotImplementedError

    async def copy_checkpoints(self, source: str, target: str) -> None:
        raise NotImplementedError

    async def drop_orphan_blobs(self, thread_id: str) -> None:
        """Remove stored channel values no checkpoint of the thread refers to any more (only
        savers that keep values apart from checkpoints have any)."""

    async def keep_latest_checkpoint(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of each namespace (the thread's state, and that of a
        subgraph that may resume), with its pending writes; older history goes."""
        writes = self.writes_table
        for sql in (
            "DELETE FROM checkpoints WHERE thread_id=? AND checkpoint_id < (SELECT "
            "MAX(c.checkpoint_id) FROM checkpoints c WHERE c.thread_id=checkpoints.thread_id "
            "AND c.checkpoint_ns=checkpoints.checkpoint_ns)",
            "UPDATE checkpoints SET parent_checkpoint_id=NULL WHERE thread_id=?",
            f"DELETE FROM {writes} WHERE thread_id=? AND NOT EXISTS (SELECT 1 FROM checkpoints "
            f"c WHERE c.thread_id={writes}.thread_id AND c.checkpoint_ns={writes}.checkpoint_ns "
            f"AND c.checkpoint_id={writes}.checkpoint_id)",
        ):
            await self.run(sql, [thread_id])
        await self.drop_orphan_blobs(thread_id)

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        ids = await self.all(
            "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id=? AND "
            f"{self.dialect.json_text('metadata', 'run_id')} = ?",
            [thread_id, run_id],
        )
        rows = [(thread_id, r["checkpoint_ns"], r["checkpoint_id"]) for r in ids]
        for table in (self.writes_table, "checkpoints"):
            await self.many(
                f"DELETE FROM {table} WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?",
                rows,
            )
        await self.drop_orphan_blobs(thread_id)

    async def run_has_checkpoint(self, thread_id: str, run_id: str) -> bool:
        row = await self.one(
            "SELECT 1 AS x FROM checkpoints WHERE thread_id=? AND checkpoint_ns='' AND "
            f"{self.dialect.json_text('metadata', 'run_id')} = ? LIMIT 1",
            [thread_id, run_id],
        )
        return row is not None
