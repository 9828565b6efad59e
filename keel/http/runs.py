"""Run routes: on a thread (`/threads/{id}/runs/*`) and stateless (`/runs/*`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from keel.auth.scope import EVERYTHING
from keel.background.webhooks import check_webhook
from keel.errors import Conflict, Gone, InvalidInput, NotFound
from keel.replay import run_events
from keel.run_config import OPEN, RunAccess, create_run_value, without_auth_keys
from keel.runs import new_run_id, run_view
from keel.serde import dumps
from keel.storage.tx import Row
from keel.streams import HEARTBEAT, mode_filter, parse_last_event_id, sse, wanted
from keel.tracing import TRACE_CONTEXT

from .auth import authorize, current_user
from .deps import Services, body, check_uuid, query_bool, query_int, query_list, raw_body, services
from .responses import JSON
from .schemas import BulkCancel, RunCreate, validate
from .sse import HEARTBEAT_SECONDS, with_heartbeat

router = APIRouter(tags=["runs"])


# ------------------------------------------------------------------ helpers
async def _create(request: Request, thread_id: str | None) -> tuple[Services, Row]:
    s = services(request)
    parsed = await body(request, RunCreate)
    return s, await _create_one(request, s, parsed.normalized(thread_id is None), thread_id)


async def _create_one(
    request: Request, s: Services, data: Row, thread_id: str | None, headers: Row | None = None
) -> Row:
    """Authorize, then create, one run for the request's user."""
    await check_webhook(s.settings.webhooks.url, data)
    run_id = new_run_id()
    access = await _access(request, s, data, thread_id, run_id)
    if headers is None:
        headers = _headers(s, request)
    carrier = s.tracing.carrier(request.headers)  # the run continues the request's trace
    if carrier:
        data[TRACE_CONTEXT] = carrier
    return await s.runs.create(data, thread_id, headers, access, run_id)


async def _access(
    request: Request, s: Services, data: Row, thread_id: str | None, run_id: str
) -> RunAccess:
    """Who creates the run and where, as the reference authorizes it: `threads.create_run`
    (a handler may stamp the run's metadata: `data` takes it back), then `assistants.read`
    for an assistant that is not a graph's system assistant."""
    if not s.guard.enabled:
        return OPEN
    user = current_user(request)
    assistant_id = s.runs.assistant_uuid(str(data["assistant_id"]))
    value = create_run_value(without_auth_keys(data), (thread_id, run_id), assistant_id, user)
    threads = await authorize(request, "threads", "create_run", value)
    data["metadata"] = value.get("metadata")
    assistants = EVERYTHING
    if not s.runs.is_system_assistant(assistant_id):
        read = {"assistant_id": assistant_id}
        assistants = await authorize(request, "assistants", "read", read)
    return RunAccess(user, threads, assistants)


def _headers(s: Services, request: Request) -> dict[str, str]:
    """The request headers `http.configurable_headers` copies into the run's configurable."""
    return s.settings.http.configurable_headers.select(request.headers.items())


def _run_path(run: Row, stateless: bool = False) -> str:
    """Where the run lives: Content-Location, and the base of Location."""
    if stateless:
        return f"/runs/{run['run_id']}"
    return f"/threads/{run['thread_id']}/runs/{run['run_id']}"


def _sse_response(
    s: Services,
    run: Row,
    after: int | None,
    keep: set[str] | None,
    cancel_on_disconnect: bool,
    location: str,
    content_location: str,
) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        async for ev in run_events(s.storage, s.hub, run["run_id"], run["thread_id"], after):
            if wanted(ev.event, keep):
                yield sse(ev.event, ev.data, ev.seq)

    async def body_gen() -> AsyncIterator[bytes]:
        finished = False
        try:
            with s.metrics.recorder.sse_subscriber():
                async for chunk in with_heartbeat(events(), HEARTBEAT):
                    yield chunk
            finished = True
        finally:
            if cancel_on_disconnect and not finished:
                _cancel_soon(s, run)

    headers = {
        "Cache-Control": "no-store",
        "Location": location,
        "Content-Location": content_location,
    }
    return StreamingResponse(body_gen(), media_type="text/event-stream", headers=headers)


def _cancel_soon(s: Services, run: Row) -> None:
    task = asyncio.get_running_loop().create_task(
        s.runs.cancel(run["thread_id"], [run["run_id"]], None, "interrupt")
    )
    s.hub.background.add(task)
    task.add_done_callback(s.hub.background.discard)


async def _wait_response(
    s: Services,
    run: Row,
    cancel_on_disconnect: bool,
    location: str,
    content_location: str,
    joined: bool = False,
    body_of: Awaitable[Any] | None = None,
) -> Response:
    """The run's final body (or what `body_of` gives); sent at once if it comes within one
    heartbeat interval, otherwise streamed as whitespace heartbeats followed by the JSON."""
    headers = {"Location": location, "Content-Location": content_location}
    if body_of is None:
        body_of = s.runs.wait(run, joined=joined)
    task = asyncio.ensure_future(body_of)
    done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
    if done:
        return Response(dumps(task.result()), media_type="application/json", headers=headers)

    async def body_gen() -> AsyncIterator[bytes]:
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
                if not task.done():
                    yield b"\n"
            yield dumps(task.result())
        finally:
            if not task.done():
                task.cancel()
                if cancel_on_disconnect:
                    _cancel_soon(s, run)

    return StreamingResponse(body_gen(), media_type="application/json", headers=headers)


async def _get_run(
    request: Request, thread_id: str, run_id: str, verb: str = "read", **value: Any
) -> tuple[Services, Row]:
    """The run, if the request's user may `verb` its thread (`threads.read`, `.update`,
    `.delete`; `value`: more of the handler's value); a run on a thread outside their scope is
    not found, as a missing one."""
    s = services(request)
    thread_id = check_uuid(thread_id, "thread_id")
    run_id = check_uuid(run_id, "run_id")
    value = {"thread_id": thread_id, "run_id": run_id, **value}
    scope = await authorize(request, "threads", verb, value)
    async with s.storage.read() as tx:
        run = await tx.get_run(run_id)
        visible = await scope.covers(tx, "threads", thread_id)
    if run is None or run["thread_id"] != thread_id or not visible:
        raise NotFound(f"Run '{run_id}' not found")
    return s, run


# ------------------------------------------------------------ thread runs
@router.post("/threads/{thread_id}/runs")
async def create_run(request: Request, thread_id: str) -> Any:
    _, run = await _create(request, check_uuid(thread_id, "thread_id"))
    return JSON(run_view(run), headers={"Content-Location": _run_path(run)})


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(request: Request, thread_id: str) -> Any:
    s, run = await _create(request, check_uuid(thread_id, "thread_id"))
    base = _run_path(run)
    cancel = run["kwargs"]["on_disconnect"] == "cancel"
    return _sse_response(s, run, 0, None, cancel, base + "/stream", base)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(request: Request, thread_id: str) -> Any:
    s, run = await _create(request, check_uuid(thread_id, "thread_id"))
    base = _run_path(run)
    cancel = run["kwargs"]["on_disconnect"] == "cancel"
    return await _wait_response(s, run, cancel, base + "/join", base)


async def thread_runs(request: Request, thread_id: str) -> list[Row]:
    """The rows of a thread's runs the caller may list (`status`, `limit`, `offset` from the
    query), newest first; NotFound for a thread the caller cannot read."""
    s = services(request)
    thread_id = check_uuid(thread_id, "thread_id")
    statuses = query_list(request, "status")
    status = statuses[-1] if statuses else None
    limit, offset = query_int(request, "limit", 10), query_int(request, "offset", 0)
    # As the reference: the thread must be readable (threads.read), its runs searchable
    # (threads.search): a thread outside that scope lists no runs.
    read = await authorize(request, "threads", "read", {"thread_id": thread_id})
    search = await authorize(request, "threads", "search", {"thread_id": thread_id, "metadata": {}})
    async with s.storage.read() as tx:
        if await tx.get_thread_in(thread_id, *read.where(tx.dialect)) is None:
            raise NotFound(f"Thread '{thread_id}' not found")
        if not await search.covers(tx, "threads", thread_id):
            return []
        return await tx.list_runs(thread_id, status, limit, offset)


@router.get("/threads/{thread_id}/runs")
async def list_runs(request: Request, thread_id: str) -> Any:
    items = [run_view(r) for r in await thread_runs(request, thread_id)]
    select = query_list(request, "select")
    if select:
        items = [{k: r.get(k) for k in select} for r in items]
    return JSON(items)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(request: Request, thread_id: str, run_id: str) -> Any:
    return JSON(run_view((await _get_run(request, thread_id, run_id))[1]))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(request: Request, thread_id: str, run_id: str) -> Response:
    s, run = await _get_run(request, thread_id, run_id, "delete")
    if run["status"] in ("pending", "running"):
        raise Conflict("Cannot delete a run that is pending or running; cancel it first")
    async with s.storage.tx() as tx:
        await tx.delete_run_checkpoints(run["thread_id"], run["run_id"])
        await tx.delete_run(run["run_id"])
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(request: Request, thread_id: str, run_id: str) -> Any:
    s, run = await _get_run(request, thread_id, run_id)
    cancel = query_bool(request, "cancel_on_disconnect")
    base = _run_path(run)
    return await _wait_response(s, run, cancel, base + "/join", base, joined=True)


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(request: Request, thread_id: str, run_id: str) -> Any:
    s, run = await _get_run(request, thread_id, run_id)
    if run.get("events_swept_at"):
        raise Gone(
            f"Run '{run_id}' finished and its events were removed by retention at "
            f"{run['events_swept_at']}; read the thread's state or the run instead"
        )
    last = request.headers.get("last-event-id")
    after = parse_last_event_id(last) if last is not None else None
    keep = mode_filter(query_list(request, "stream_mode"))
    cancel = query_bool(request, "cancel_on_disconnect")
    base = _run_path(run)
    return _sse_response(s, run, after, keep, cancel, base + "/stream", base)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(request: Request, thread_id: str, run_id: str) -> Any:
    action = _action(request)
    meta = {"run_ids": [run_id], "status": None}
    s, run = await _get_run(request, thread_id, run_id, "update", action=action, metadata=meta)
    missing = f"No matching runs to cancel: run '{run_id}' is not pending or running"
    if not query_bool(request, "wait"):
        if not await s.runs.cancel(run["thread_id"], [run["run_id"]], None, action):
            raise NotFound(missing)
        return Response(status_code=202)
    body_of = await s.runs.cancel_and_wait(run, action)
    if body_of is None:
        raise NotFound(missing)
    base = _run_path(run)
    return await _wait_response(s, run, False, base + "/join", base, body_of=body_of)


def _action(request: Request) -> str:
    values = query_list(request, "action")
    action = values[-1] if values else "interrupt"
    if action not in ("interrupt", "rollback"):
        raise InvalidInput(f"action must be 'interrupt' or 'rollback', not {action!r}")
    return action


# --------------------------------------------------------------- stateless
@router.post("/runs")
async def create_stateless(request: Request) -> Any:
    _, run = await _create(request, None)
    return JSON(run_view(run), headers={"Content-Location": _run_path(run, stateless=True)})


@router.post("/runs/stream")
async def stream_stateless(request: Request) -> Any:
    s, run = await _create(request, None)
    path = _run_path(run, stateless=True)
    cancel = run["kwargs"]["on_disconnect"] == "cancel"
    return _sse_response(s, run, 0, None, cancel, path + "/stream", path)


@router.post("/runs/wait")
async def wait_stateless(request: Request) -> Any:
    s, run = await _create(request, None)
    base = _run_path(run)
    cancel = run["kwargs"]["on_disconnect"] == "cancel"
    return await _wait_response(s, run, cancel, base + "/join", base)


@router.post("/runs/batch")
async def batch(request: Request) -> Any:
    s = services(request)
    payload = await raw_body(request)
    if not isinstance(payload, list):
        raise InvalidInput("body: expected an array of run-create objects")
    bodies = [validate(RunCreate, item).normalized(True) for item in payload]
    headers = _headers(s, request)
    return JSON([run_view(await _create_one(request, s, b, None, headers)) for b in bodies])


@router.post("/runs/cancel", status_code=204)
async def bulk_cancel(request: Request) -> Response:
    s = services(request)
    q = await body(request, BulkCancel)
    if q.status is not None and (q.run_ids is not None or q.thread_id is not None):
        raise InvalidInput("Provide either status or thread_id with run_ids, not both")
    if q.status is None and not q.run_ids:
        raise InvalidInput("Provide either status or run_ids")
    run_ids = [check_uuid(r, "run_id") for r in q.run_ids] if q.run_ids else None
    thread_id = check_uuid(q.thread_id, "thread_id") if q.thread_id else None
    action = _action(request)
    value = {
        "thread_id": thread_id,
        "action": action,
        "metadata": {"run_ids": run_ids, "status": q.status},
    }
    scope = await authorize(request, "threads", "update", value)
    # Runs on threads outside the caller's scope count as not found.
    n = await s.runs.cancel(thread_id, run_ids, q.status, action, scope=scope)
    if n == 0:
        raise NotFound("No matching runs to cancel")
    return Response(status_code=204)
