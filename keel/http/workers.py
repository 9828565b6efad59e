"""Keel's view of execution, beyond the reference API (docs/operations.md "Workers"):

- `GET /keel/workers`: the worker processes (keel.worker.registry) with their heartbeat and the
  leases their runs hold.
- `GET /keel/threads/{thread_id}/runs`: a thread's runs with their attempt and, while running,
  their worker and lease; authorised exactly as `GET /threads/{thread_id}/runs` (same query:
  `status`, `limit`, `offset`; a thread the caller cannot read is a 404).

Tenancy: worker processes are shared infrastructure. Any caller who may search threads (every
built-in role; a custom `threads.search` handler decides otherwise) sees them, but of their leases
only those of runs on threads in that caller's search scope (its organisation and its handlers'
filters): no caller ever sees another tenant's run ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keel import clock
from keel.worker.registry import attempt_view, workers_view

from .auth import authorize
from .deps import services
from .responses import JSON
from .runs import thread_runs

router = APIRouter(prefix="/keel", tags=["runs"])


@router.get("/workers")
async def list_workers(request: Request) -> Any:
    scope = await authorize(request, "threads", "search", {"metadata": {}})
    async with services(request).storage.read() as tx:
        workers = await tx.list_workers()
        leases = await tx.held_leases(*scope.where(tx.dialect, "t"))
    return JSON(workers_view(workers, leases, clock.now()))


@router.get("/threads/{thread_id}/runs")
async def list_run_attempts(request: Request, thread_id: str) -> Any:
    return JSON([attempt_view(r) for r in await thread_runs(request, thread_id)])
