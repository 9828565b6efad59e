"""`/runs/crons` and `/threads/{tid}/runs/crons` routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keel.crons import CronService

from .deps import body, check_uuid, services
from .responses import JSON, paginated, select_fields
from .schemas import CronCreate, CronPatch, CronSearch

router = APIRouter(tags=["crons"])


def _svc(request: Request) -> CronService:
    s = services(request)
    return CronService(s.storage, s.runs, s.scheduler.wake if s.scheduler else None)


async def _create(request: Request, thread_id: str | None) -> Any:
    parsed = await body(request, CronCreate)
    data = parsed.normalized(False)
    return JSON(await _svc(request).create(data, thread_id))


@router.post("/runs/crons")
async def create(request: Request) -> Any:
    return await _create(request, None)


@router.post("/threads/{thread_id}/runs/crons")
async def create_for_thread(request: Request, thread_id: str) -> Any:
    return await _create(request, check_uuid(thread_id, "thread_id"))


@router.post("/runs/crons/search")
async def search(request: Request) -> Any:
    q = (await body(request, CronSearch)).given()
    items, more = await _svc(request).search(q)
    return paginated(
        select_fields(items, q.get("select")), q.get("offset", 0), q.get("limit", 10), more
    )


@router.post("/runs/crons/count")
async def count(request: Request) -> Any:
    return JSON(await _svc(request).count((await body(request, CronSearch)).given()))


@router.get("/runs/crons/{cron_id}")
async def get(request: Request, cron_id: str) -> Any:
    return JSON(await _svc(request).get(check_uuid(cron_id, "cron_id")))


@router.patch("/runs/crons/{cron_id}")
async def patch(request: Request, cron_id: str) -> Any:
    data = (await body(request, CronPatch)).normalized()
    return JSON(await _svc(request).patch(check_uuid(cron_id, "cron_id"), data))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete(request: Request, cron_id: str) -> Response:
    await _svc(request).delete(check_uuid(cron_id, "cron_id"))
    return Response(status_code=204)
