"""`GET /threads/{tid}/runs/{rid}/webhooks`: how a run's webhook delivery went."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keel import clock
from keel.storage.tx import Row

from .responses import JSON
from .runs import _get_run

router = APIRouter(tags=["runs"])


def delivery_view(row: Row) -> Row:
    """A delivery as the API shows it (times as ISO strings)."""
    pending = row["status"] == "pending"
    return {
        "webhook_id": row["webhook_id"],
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "next_attempt_at": clock.iso(row["next_attempt_at"]) if pending else None,
        "give_up_at": clock.iso(row["give_up_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": row["delivered_at"],
    }


@router.get("/threads/{thread_id}/runs/{run_id}/webhooks")
async def run_webhooks(request: Request, thread_id: str, run_id: str) -> Any:
    """The run's webhook delivery (a list: empty when the run named no webhook, has not ended,
    or webhooks are disabled), readable by whoever may read the run."""
    s, run = await _get_run(request, thread_id, run_id)
    async with s.storage.read() as tx:
        rows = await tx.run_deliveries(run["run_id"])
    return JSON([delivery_view(r) for r in rows])
