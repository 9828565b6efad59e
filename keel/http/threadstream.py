"""The thread-centric ("v3") protocol's routes: `POST /threads/{id}/commands` and
`POST /threads/{id}/stream/events` (SSE); the WebSocket transport is keel/http/threadstream_ws.py.
See docs/thread-stream.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from keel.errors import KeelError, NotFound
from keel.serde import dumps
from keel.storage.tx import Row
from keel.streams import HEARTBEAT
from keel.threads import ThreadService
from keel.threadstream.channels import parse_since, parse_subscription
from keel.threadstream.commands import (
    Command,
    CommandError,
    Subscriptions,
    agent_tree,
    code_of,
    error,
    named_checkpoint,
    parse_command,
    protocol_run,
    require_checkpoint,
    respond_body,
    run_start_body,
    success,
)
from keel.threadstream.feed import thread_events

from .auth import authorize
from .deps import check_uuid, raw_body, services
from .responses import JSON
from .runs import _create_one
from .schemas import Body, RunCreate, validate
from .sse import with_heartbeat

router = APIRouter(tags=["threads"])


class ProtocolCommand(Body):
    """A command (`langchain_protocol.Command`), for /openapi.json: read by parse_command."""

    id: int
    method: str
    params: dict[str, Any] | None = None


class EventStreamBody(Body):
    """`langchain_protocol.EventStreamRequest`, for /openapi.json: read by parse_subscription."""

    channels: list[str]
    namespaces: list[list[str]] | None = None
    depth: int | None = None
    since: int | None = None


async def _readable(request: Request, thread_id: str) -> None:
    """The thread exists and the request's user may read it (else 404, as the thread API)."""
    scope = await authorize(request, "threads", "read", {"thread_id": thread_id})
    await ThreadService(services(request).storage, scope).get(thread_id)


def _event_frame(event: Row) -> bytes:
    return (
        b"event: "
        + str(event["method"]).encode()
        + b"\r\ndata: "
        + dumps(event)
        + b"\r\nid: "
        + str(event["event_id"]).encode()
        + b"\r\n\r\n"
    )


@router.post("/threads/{thread_id}/stream/events")
async def stream_events(request: Request, thread_id: str) -> Any:
    """The thread's protocol events after `since` (all of them without it), then live ones;
    open across runs (heartbeats) until the client leaves."""
    s = services(request)
    thread_id = check_uuid(thread_id, "thread_id")
    payload = await raw_body(request)
    sub = parse_subscription(payload)
    since = parse_since(payload)
    await _readable(request, thread_id)
    queue = s.hub.subscribe_thread(thread_id, keeps=sub.keeps)

    async def frames() -> AsyncIterator[bytes]:
        async for event in thread_events(s.storage, s.hub, thread_id, since, queue):
            if sub.wants(event):
                yield _event_frame(event)

    async def gen() -> AsyncIterator[bytes]:
        try:
            with s.metrics.recorder.sse_subscriber():
                async for chunk in with_heartbeat(frames(), HEARTBEAT):
                    yield chunk
        finally:
            s.hub.unsubscribe_thread(thread_id, queue)

    headers = {"Cache-Control": "no-store"}
    return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)


@router.post("/threads/{thread_id}/commands")
async def commands(request: Request, thread_id: str) -> Any:
    thread_id = check_uuid(thread_id, "thread_id")
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return JSON(error(None, "invalid_argument", f"Invalid JSON body: {exc}"), status_code=400)
    try:
        command = parse_command(payload)
    except CommandError as exc:
        cid = payload.get("id") if isinstance(payload, dict) else None
        return JSON(error(cid, exc.code, exc.message), status_code=400)
    return JSON(await run_command(request, thread_id, command, Subscriptions()))


async def run_command(
    request: Request, thread_id: str, command: Command, subs: Subscriptions
) -> Row:
    """The response envelope of one command."""
    try:
        return dict(success(command.id, await _dispatch(request, thread_id, command, subs)))
    except CommandError as exc:
        return dict(error(command.id, exc.code, exc.message))
    except KeelError as exc:
        return dict(error(command.id, code_of(exc), str(exc)))


async def _dispatch(request: Request, thread_id: str, command: Command, subs: Subscriptions) -> Any:
    method, params = command.method, command.params
    if method == "run.start":
        return await _run_start(request, thread_id, params)
    if method == "input.respond":
        return await _respond(request, thread_id, params)
    if method == "agent.getTree":
        await _readable_or(request, thread_id)
        return await agent_tree(services(request).storage, thread_id, params)
    if method == "subscription.subscribe":
        return subs.subscribe(params)
    if method == "subscription.unsubscribe":
        return subs.unsubscribe(params)
    if method == "subscription.reconnect":
        # Over HTTP no stream belongs to the command: nothing to restore (an SSE stream resumes
        # with `since` in its body).
        return {"restored": bool(subs.reconnect(params))}
    raise CommandError("unknown_command", f"unknown command {method!r}")


async def _readable_or(request: Request, thread_id: str, code: str = "no_such_run") -> None:
    try:
        await _readable(request, thread_id)
    except NotFound:
        raise CommandError(code, f"thread {thread_id} does not exist") from None


async def _start(request: Request, thread_id: str, body: Row) -> Row:
    s = services(request)
    data = protocol_run(validate(RunCreate, body).normalized(False))
    return await _create_one(request, s, data, thread_id)


async def _run_start(request: Request, thread_id: str, params: Row) -> Row:
    body = run_start_body(params)
    wanted = named_checkpoint(thread_id, body)
    if wanted is not None:
        await _readable_or(request, thread_id, "no_such_checkpoint")
        await require_checkpoint(services(request).storage, wanted)
    run = await _start(request, thread_id, body)
    return {"run_id": run["run_id"]}


async def _respond(request: Request, thread_id: str, params: Row) -> Row:
    await _readable_or(request, thread_id)
    s = services(request)
    body = await respond_body(s.storage, thread_id, params, s.runs.wait)
    await _start(request, thread_id, body)
    return {}
