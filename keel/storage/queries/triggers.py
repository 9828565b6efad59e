"""Sleep-time trigger state (keel.background.triggers): one row per (trigger, subject)."""

from __future__ import annotations

from typing import Any

from keel.storage.queries.base import Queries, Row, j

STATE_COLS = "trigger_name, subject, due_at, ended_runs, day, day_runs, payload"


class TriggerQueries(Queries):
    async def arm_trigger(self, name: str, subject: str, due_at: str, payload: Any) -> None:
        """Set (or move) when the trigger fires for `subject`."""
        await self.run(
            "INSERT INTO trigger_states (trigger_name, subject, due_at, payload) "
            "VALUES (?,?,?,?) ON CONFLICT (trigger_name, subject) DO UPDATE SET "
            "due_at=excluded.due_at, payload=excluded.payload",
            [name, subject, due_at, j(payload)],
        )

    async def count_trigger_run(self, name: str, subject: str, payload: Any) -> int:
        """One more run ended on `subject`; returns how many since the trigger last fired."""
        rows = await self.all(
            "INSERT INTO trigger_states (trigger_name, subject, ended_runs, payload) "
            "VALUES (?,?,1,?) ON CONFLICT (trigger_name, subject) DO UPDATE SET "
            "ended_runs=trigger_states.ended_runs+1, payload=excluded.payload "
            "RETURNING ended_runs",
            [name, subject, j(payload)],
        )
        return int(rows[0]["ended_runs"])

    async def due_at_once(self, name: str, subject: str, due_at: str) -> None:
        """Arm the trigger now and start counting runs again (`every_n_runs`)."""
        await self.run(
            "UPDATE trigger_states SET due_at=?, ended_runs=0 WHERE trigger_name=? AND subject=?",
            [due_at, name, subject],
        )

    async def next_trigger_at(self) -> str | None:
        row = await self.one("SELECT MIN(due_at) AS t FROM trigger_states WHERE due_at IS NOT NULL")
        return row["t"] if row else None

    async def due_triggers(self, now: str, limit: int) -> list[Row]:
        return await self.all(
            f"SELECT {STATE_COLS} FROM trigger_states WHERE due_at IS NOT NULL AND due_at<=? "
            "ORDER BY due_at LIMIT ?",
            [now, limit],
        )

    async def take_trigger(self, state: Row, following: str | None) -> bool:
        """Consume a due firing (compare-and-set on its due time): only one process gets it."""
        changed = await self.run(
            "UPDATE trigger_states SET due_at=? WHERE trigger_name=? AND subject=? AND due_at=?",
            [following, state["trigger_name"], state["subject"], state["due_at"]],
        )
        return changed == 1

    async def trigger_state(self, name: str, subject: str) -> Row | None:
        return await self.one(
            f"SELECT {STATE_COLS} FROM trigger_states WHERE trigger_name=? AND subject=?",
            [name, subject],
        )

    async def spend_trigger_budget(
        self, name: str, subject: str, day: str, limit: int | None
    ) -> bool:
        """Count one background run of the trigger on `subject` today; False (nothing counted)
        when `limit` runs were already made today."""
        await self.run(
            "INSERT INTO trigger_states (trigger_name, subject) VALUES (?,?) "
            "ON CONFLICT (trigger_name, subject) DO NOTHING",
            [name, subject],
        )
        changed = await self.run(
            "UPDATE trigger_states SET day_runs=CASE WHEN day=? THEN day_runs+1 ELSE 1 END, "
            "day=? WHERE trigger_name=? AND subject=? AND (day IS NULL OR day<>? OR day_runs<?)",
            [day, day, name, subject, day, limit if limit is not None else 2**62],
        )
        return changed == 1

    async def drop_trigger_state(self, name: str, subject: str) -> None:
        await self.run(
            "DELETE FROM trigger_states WHERE trigger_name=? AND subject=?", [name, subject]
        )

    async def threads_matching(self, metadata: Row, limit: int) -> list[Row]:
        """Threads whose metadata contains `metadata` (a schedule trigger's selection)."""
        where, params = self.dialect.containment("metadata", metadata)
        return await self.all(
            f"SELECT * FROM threads WHERE {where} ORDER BY created_at LIMIT ?",
            [*params, limit],
        )
