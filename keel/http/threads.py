"""`/threads` routes (CRUD, search, copy, prune, thread stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from keel.errors import InvalidInput
from keel.replay import thread_events
from keel.state import StateService
from keel.streams import HEARTBEAT, FeedOverflow, sse
from keel.threads import ThreadService

from .auth import authorize, current_user
from .deps import body, check_uuid, query_list, services
from .responses import JSON, paginated, select_fields
from .schemas import Prune, ThreadCreate, ThreadPatch, ThreadSearch
from .sse import with_heartbeat

router = APIRouter(tags=["threads"])
THREAD_MODES = {"run_modes", "lifecycle", "state_update"}


async def _svc(request: Request, action: str, value: dict[str, Any]) -> ThreadService:
    """Threads as the request's user may `action` them (authorized by their handlers)."""
    scope = await authorize(request, "threads", action, value)
    return ThreadService(services(request).storage, scope)


def _searched(q: dict[str, Any]) -> dict[str, Any]:
    keys = ("metadata", "values", "status", "limit", "offset", "ids")
    return {k: q.get(k) for k in keys}


@router.post("/threads")
async def create(request: Request) -> Any:
    parsed = await body(request, ThreadCreate)
    data = parsed.given()
    value = {k: data.get(k) for k in ("thread_id", "metadata", "if_exists", "ttl")}
    value["metadata"] = dict(data.get("metadata") or {})
    svc = await _svc(request, "create", value)
    data["metadata"] = value["metadata"]  # a handler may have stamped it (an owner)
    supersteps = parsed.superstep_rows()
    if not supersteps:
        return JSON(await svc.create(data))
    s = services(request)
    state = StateService(s.storage, s.graphs, s.hub, svc.scope, current_user(request))
    return JSON(await state.create_thread(svc, data, supersteps))


@router.post("/threads/search")
async def search(request: Request) -> Any:
    q = (await body(request, ThreadSearch)).given()
    items, more = await (await _svc(request, "search", _searched(q))).search(q)
    return paginated(
        select_fields(items, q.get("select")), q.get("offset", 0), q.get("limit", 10), more
    )


@router.post("/threads/count")
async def count(request: Request) -> Any:
    q = (await body(request, ThreadSearch)).given()
    return JSON(await (await _svc(request, "search", _searched(q))).count(q))


@router.post("/threads/prune")
async def prune(request: Request) -> Any:
    q = await body(request, Prune)
    svc = await _svc(request, "delete", {"thread_ids": list(q.thread_ids)})
    n = await svc.prune(q.thread_ids, q.strategy, services(request).runs.cancel)
    return JSON({"pruned_count": n})


@router.get("/threads/{thread_id}")
async def get(request: Request, thread_id: str) -> Any:
    include = query_list(request, "include")
    thread_id = check_uuid(thread_id, "thread_id")
    svc = await _svc(request, "read", {"thread_id": thread_id})
    return JSON(await svc.get(thread_id, "ttl" in include))


@router.patch("/threads/{thread_id}")
async def patch(request: Request, thread_id: str) -> Any:
    data = (await body(request, ThreadPatch)).given()
    thread_id = check_uuid(thread_id, "thread_id")
    value = {"thread_id": thread_id, "metadata": dict(data.get("metadata") or {})}
    svc = await _svc(request, "update", value)
    if data.get("metadata") is not None or value["metadata"]:
        data["metadata"] = value["metadata"]
    thread = await svc.patch(thread_id, data)
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=204)
    return JSON(thread)


@router.delete("/threads/{thread_id}", status_code=204)
async def delete(request: Request, thread_id: str) -> Response:
    thread_id = check_uuid(thread_id, "thread_id")
    svc = await _svc(request, "delete", {"thread_id": thread_id})
    await svc.delete(thread_id, services(request).runs.cancel)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy(request: Request, thread_id: str) -> Any:
    thread_id = check_uuid(thread_id, "thread_id")
    source = await _svc(request, "read", {"thread_id": thread_id})
    await _svc(request, "create", {"thread_id": None, "metadata": {}})
    return JSON(await source.copy(thread_id))


def _thread_mode_filter(modes: set[str]) -> Callable[[str], bool]:
    """Which events a thread stream forwards for its `stream_modes` (§4.7)."""

    def keep(event: str) -> bool:
        if event == "state_update":
            return "state_update" in modes
        if "run_modes" in modes:
            return True
        return "lifecycle" in modes and event == "metadata"

    return keep


@router.get("/threads/{thread_id}/stream")
async def thread_stream(request: Request, thread_id: str) -> Any:
    """Every event of every run on the thread, plus state updates; never closes by itself."""
    s = services(request)
    thread_id = check_uuid(thread_id, "thread_id")
    await (await _svc(request, "read", {"thread_id": thread_id})).get(thread_id)
    modes = set(query_list(request, "stream_modes"))
    if modes - THREAD_MODES:
        raise InvalidInput(f"Invalid stream mode: {', '.join(sorted(modes - THREAD_MODES))}")
    # The Python SDK names the parameter `stream_mode` (the reference ignores it): honoured
    # where it names a thread stream mode.
    modes |= set(query_list(request, "stream_mode")) & THREAD_MODES
    keep = _thread_mode_filter(modes or {"run_modes"})
    queue = s.hub.subscribe_thread(thread_id, keeps=keep)
    last = request.headers.get("last-event-id")

    async def live(sent: set[str]) -> AsyncIterator[bytes]:
        # A client reading slower than the thread's runs publish overflows the bounded queue:
        # the response ends after what it held, and the client resumes with Last-Event-ID.
        while True:
            try:
                event_id, event, data = await queue.get()
            except FeedOverflow:
                return
            if event_id not in sent and keep(event):
                yield sse(event, data, event_id)

    async def gen() -> AsyncIterator[bytes]:
        sent: set[str] = set()
        try:
            if last is not None:
                async for event_id, ev in thread_events(s.storage, s.hub, thread_id, last):
                    sent.add(event_id)
                    if keep(ev.event):
                        yield sse(ev.event, ev.data, event_id)
            with s.metrics.recorder.sse_subscriber():
                async for chunk in with_heartbeat(live(sent), HEARTBEAT):
                    yield chunk
        finally:
            s.hub.unsubscribe_thread(thread_id, queue)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
