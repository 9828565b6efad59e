"""What `keel db stats` reads: row counts and the oldest runs (`keel.retention.stats`)."""

from __future__ import annotations

from keel.storage.queries.base import Queries, Row
from keel.storage.queries.retention import FINISHED


class StatsQueries(Queries):
    async def count_rows(self, table: str) -> int:
        """The exact number of rows of `table` (a name read from the database's catalogue)."""
        quoted = table.replace('"', '""')
        row = await self.one(f'SELECT COUNT(*) AS n FROM "{quoted}"')
        return int(row["n"]) if row else 0

    async def oldest_run(self) -> Row | None:
        return await self.one("SELECT run_id, created_at FROM runs ORDER BY created_at LIMIT 1")

    async def oldest_event_log(self) -> Row | None:
        """The finished run that ended longest ago and still holds its event log: the next one
        retention removes."""
        return await self.one(
            "SELECT run_id, updated_at AS ended_at FROM runs WHERE events_swept_at IS NULL AND "
            f"status IN {FINISHED} ORDER BY updated_at LIMIT 1"
        )
