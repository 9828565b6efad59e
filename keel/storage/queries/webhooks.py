"""The webhook outbox (`webhook_deliveries`, keel/background/outbox.py)."""

from __future__ import annotations

from keel.storage.queries.base import Queries, Row, j

DELIVERY_VIEW = (
    "run_id, thread_id, webhook_id, url, status, attempts, created_at, updated_at, "
    "next_attempt_at, give_up_at, last_status_code, last_error, delivered_at"
)


class WebhookQueries(Queries):
    async def insert_delivery(self, d: Row) -> None:
        """The outbox row of a run that just ended (at most one per run)."""
        await self.run(
            "INSERT INTO webhook_deliveries (run_id, thread_id, webhook_id, url, payload, status, "
            "attempts, created_at, updated_at, next_attempt_at, give_up_at) "
            "VALUES (?,?,?,?,?,'pending',0,?,?,?,?) ON CONFLICT DO NOTHING",
            [
                d["run_id"],
                d["thread_id"],
                d["webhook_id"],
                d["url"],
                j(d["payload"]),
                d["created_at"],
                d["created_at"],
                d["next_attempt_at"],
                d["give_up_at"],
            ],
        )

    async def claim_deliveries(
        self, holder: str, now: float, now_iso: str, lease_until: float, limit: int
    ) -> list[Row]:
        """Lease up to `limit` due deliveries nobody holds (or whose holder's lease ran out),
        counting the attempt; concurrent claimers pass each other (PostgreSQL: SKIP LOCKED)."""
        return await self.all(
            "UPDATE webhook_deliveries SET leased_by=?, lease_until=?, attempts=attempts+1, "
            "updated_at=? WHERE run_id IN (SELECT run_id FROM webhook_deliveries "
            "WHERE status='pending' AND next_attempt_at<=? AND (lease_until IS NULL OR "
            f"lease_until<?) ORDER BY next_attempt_at LIMIT ? {self.dialect.skip_locked}) "
            "RETURNING *",
            [holder, lease_until, now_iso, now, now, limit],
        )

    async def renew_delivery_leases(self, holder: str, run_ids: list[str], until: float) -> None:
        marks = ",".join("?" * len(run_ids))
        await self.run(
            f"UPDATE webhook_deliveries SET lease_until=? WHERE leased_by=? AND status='pending' "
            f"AND run_id IN ({marks})",
            [until, holder, *run_ids],
        )

    async def delivered(self, run_id: str, code: int, now_iso: str) -> None:
        """A receiver answered 2xx: delivered, whoever holds the lease now."""
        await self.run(
            "UPDATE webhook_deliveries SET status='delivered', delivered_at=?, updated_at=?, "
            "last_status_code=?, last_error=NULL, leased_by=NULL, lease_until=NULL "
            "WHERE run_id=? AND status='pending'",
            [now_iso, now_iso, code, run_id],
        )

    async def attempt_failed(
        self, run_id: str, holder: str, outcome: Row, next_at: float | None, now_iso: str
    ) -> bool:
        """Record a failed attempt while `holder` still holds the delivery: retried at
        `next_at`, or failed for good (None)."""
        status = "pending" if next_at is not None else "failed"
        changed = await self.run(
            "UPDATE webhook_deliveries SET status=?, next_attempt_at=COALESCE(?, next_attempt_at), "
            "last_status_code=?, last_error=?, updated_at=?, leased_by=NULL, lease_until=NULL "
            "WHERE run_id=? AND leased_by=? AND status='pending'",
            [status, next_at, outcome.get("code"), outcome["error"], now_iso, run_id, holder],
        )
        return changed == 1

    async def free_delivery_leases(self) -> int:
        """Forget every lease (SQLite at start: one process holds the file, so every lease left
        is a dead process's)."""
        return await self.run(
            "UPDATE webhook_deliveries SET leased_by=NULL, lease_until=NULL "
            "WHERE leased_by IS NOT NULL"
        )

    async def run_deliveries(self, run_id: str) -> list[Row]:
        return await self.all(
            f"SELECT {DELIVERY_VIEW} FROM webhook_deliveries WHERE run_id=?", [run_id]
        )

    async def next_delivery_at(self) -> float | None:
        row = await self.one(
            "SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE status='pending'"
        )
        return None if row is None or row["t"] is None else float(row["t"])
