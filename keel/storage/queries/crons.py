"""Crons."""

from __future__ import annotations

from typing import Any

from keel.storage.queries.base import CRON_COLS, Queries, Row, j


class CronQueries(Queries):
    async def insert_cron(self, c: Row) -> None:
        await self.run(
            f"INSERT INTO crons ({CRON_COLS}, org) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                c["cron_id"],
                c["assistant_id"],
                c["thread_id"],
                c["on_run_completed"],
                c["end_time"],
                c["schedule"],
                c["timezone"],
                c["created_at"],
                c["updated_at"],
                j(c["payload"]),
                c["user_id"],
                c["next_run_date"],
                j(c["metadata"]),
                int(c["enabled"]),
                c.get("org"),
            ],
        )

    async def update_cron(self, c: Row) -> None:
        await self.run(
            "UPDATE crons SET end_time=?, schedule=?, timezone=?, updated_at=?, payload=?, "
            "next_run_date=?, metadata=?, enabled=?, on_run_completed=? WHERE cron_id=?",
            [
                c["end_time"],
                c["schedule"],
                c["timezone"],
                c["updated_at"],
                j(c["payload"]),
                c["next_run_date"],
                j(c["metadata"]),
                int(c["enabled"]),
                c["on_run_completed"],
                c["cron_id"],
            ],
        )

    async def get_cron(self, cron_id: str) -> Row | None:
        return await self.one(f"SELECT {CRON_COLS} FROM crons WHERE cron_id=?", [cron_id])

    async def get_cron_in(self, cron_id: str, where: str, params: list[Any]) -> Row | None:
        """The cron if it satisfies `where` (an auth scope's SQL)."""
        return await self.one(
            f"SELECT {CRON_COLS} FROM crons WHERE cron_id=? AND {where}", [cron_id, *params]
        )

    async def delete_cron(self, cron_id: str) -> int:
        return await self.run("DELETE FROM crons WHERE cron_id=?", [cron_id])

    async def search_crons(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT {CRON_COLS} FROM crons WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def due_crons(self, now: str, limit: int) -> list[Row]:
        """Enabled crons whose next slot is due and not past their end time, oldest first
        (read without locks: `claim_cron` decides who fires each)."""
        return await self.all(
            f"SELECT {CRON_COLS}, org FROM crons WHERE enabled=1 AND next_run_date IS NOT NULL "
            "AND next_run_date<=? AND (end_time IS NULL OR end_time>=next_run_date) "
            "ORDER BY next_run_date, cron_id LIMIT ?",
            [now, limit],
        )

    async def claim_cron(self, cron_id: str, slot: str, next_run: str | None) -> bool:
        """Move an enabled cron's next run date from `slot` on, if no one else has and no other
        transaction holds its row (compare-and-set; PostgreSQL: a row another scheduler is
        firing is skipped, not waited for). Held until this transaction ends."""
        changed = await self.run(
            "UPDATE crons SET next_run_date=? WHERE cron_id IN (SELECT cron_id FROM crons "
            f"WHERE cron_id=? AND next_run_date=? AND enabled=1 {self.dialect.skip_locked})",
            [next_run, cron_id, slot],
        )
        return changed == 1

    async def next_cron_at(self) -> str | None:
        row = await self.one(
            "SELECT MIN(next_run_date) AS at FROM crons WHERE enabled=1 "
            "AND (end_time IS NULL OR end_time>=next_run_date)"
        )
        return None if row is None else row["at"]
