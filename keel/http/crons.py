"""`/runs/crons` and `/threads/{tid}/runs/crons` routes.

As the reference: a cron's assistant must be readable by its creator (`assistants.read`, not
asked for system assistants) and its thread too (`threads.read`); a search leaves out crons on
threads the caller's `threads.read` / `threads.search` handler hides."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from keel.auth.scope import EVERYTHING, Scope
from keel.background.webhooks import check_webhook
from keel.crons import SELECTABLE, CronService, run_payload
from keel.errors import InvalidInput

from .auth import authorize, current_user
from .deps import body, check_uuid, services
from .responses import JSON, paginated, select_fields
from .schemas import CronCreate, CronPatch, CronSearch

router = APIRouter(tags=["crons"])


async def _svc(request: Request, action: str, value: dict[str, Any]) -> CronService:
    """Crons as the request's user may `action` them (authorized by their handlers)."""
    scope = await authorize(request, "crons", action, value)
    s = services(request)
    wake = s.scheduler.wake if s.scheduler else None
    return CronService(s.storage, s.runs, wake, scope, current_user(request))


async def _assistant_scope(request: Request, assistant_id: str) -> Scope:
    """Where the cron's assistant must be: system assistants are everyone's (no handler)."""
    runs = services(request).runs
    if assistant_id in runs.graphs or runs.is_system_assistant(assistant_id):
        return EVERYTHING
    return await authorize(request, "assistants", "read", {"assistant_id": assistant_id})


async def _create(request: Request, thread_id: str | None) -> Any:
    data = (await body(request, CronCreate)).normalized(False)
    await check_webhook(services(request).settings.webhooks.url, data)
    cron_id = str(uuid.uuid4())
    user = current_user(request)
    value = {
        "payload": run_payload(data),
        "schedule": data.get("schedule"),
        "cron_id": cron_id,
        "thread_id": thread_id,
        "user_id": None if user is None else user.identity,
        "end_time": data.get("end_time"),
        "metadata": dict(data.get("metadata") or {}),
    }
    svc = await _svc(request, "create", value)
    data["metadata"] = value["metadata"]  # a handler may have stamped it (an owner)
    assistant_scope = await _assistant_scope(request, str(data["assistant_id"]))
    thread_scope = EVERYTHING
    if thread_id is not None:
        read = {"thread_id": thread_id, "metadata": value["metadata"]}
        thread_scope = await authorize(request, "threads", "read", read)
    cron = await svc.create(
        data,
        thread_id,
        cron_id=cron_id,
        assistant_scope=assistant_scope,
        thread_scope=thread_scope,
    )
    return JSON(cron)


@router.post("/runs/crons")
async def create(request: Request) -> Any:
    return await _create(request, None)


@router.post("/threads/{thread_id}/runs/crons")
async def create_for_thread(request: Request, thread_id: str) -> Any:
    return await _create(request, check_uuid(thread_id, "thread_id"))


async def _searching(request: Request, q: dict[str, Any], paged: bool) -> tuple[CronService, Scope]:
    """The crons the caller may search, and the threads whose crons they may see."""
    if q.get("assistant_id") is not None:  # as the reference: a UUID, not a graph name
        q["assistant_id"] = check_uuid(q["assistant_id"], "assistant ID")
    value = {
        "assistant_id": q.get("assistant_id"),
        "thread_id": q.get("thread_id"),
        "limit": q.get("limit", 10) if paged else 0,
        "offset": q.get("offset", 0) if paged else 0,
        "metadata": q.get("metadata") or {},
    }
    svc = await _svc(request, "search", value)
    if q.get("thread_id"):
        threads = await authorize(request, "threads", "read", {"thread_id": q["thread_id"]})
    else:
        threads = await authorize(request, "threads", "search", {})
    return svc, threads


@router.post("/runs/crons/search")
async def search(request: Request) -> Any:
    q = (await body(request, CronSearch)).given()
    unknown = sorted(set(q.get("select") or ()) - set(SELECTABLE))
    if unknown:
        raise InvalidInput(f"select: unknown fields {unknown}; must be among {list(SELECTABLE)}")
    svc, threads = await _searching(request, q, True)
    items, more = await svc.search(q, threads)
    return paginated(
        select_fields(items, q.get("select")), q.get("offset", 0), q.get("limit", 10), more
    )


@router.post("/runs/crons/count")
async def count(request: Request) -> Any:
    q = (await body(request, CronSearch)).given()
    svc, threads = await _searching(request, q, False)
    return JSON(await svc.count(q, threads))


@router.get("/runs/crons/{cron_id}")
async def get(request: Request, cron_id: str) -> Any:
    cron_id = check_uuid(cron_id, "cron_id")
    return JSON(await (await _svc(request, "read", {"cron_id": cron_id})).get(cron_id))


@router.patch("/runs/crons/{cron_id}")
async def patch(request: Request, cron_id: str) -> Any:
    data = (await body(request, CronPatch)).normalized()
    await check_webhook(services(request).settings.webhooks.url, data)
    cron_id = check_uuid(cron_id, "cron_id")
    value = {k: data.get(k) for k in ("schedule", "end_time", "enabled", "on_run_completed")}
    value.update(cron_id=cron_id, payload=run_payload(data))
    if data.get("metadata") is not None:
        value["metadata"] = dict(data["metadata"])
    svc = await _svc(request, "update", value)
    if value.get("metadata") is not None:
        data["metadata"] = value["metadata"]
    return JSON(await svc.patch(cron_id, data))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete(request: Request, cron_id: str) -> Response:
    cron_id = check_uuid(cron_id, "cron_id")
    await (await _svc(request, "delete", {"cron_id": cron_id})).delete(cron_id)
    return Response(status_code=204)
