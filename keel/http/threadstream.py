"""The thread-centric ("v3") protocol's routes: `POST /threads/{id}/commands` and
`POST /threads/{id}/stream/events` (SSE). See docs/thread-stream.md."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from keel.auth.scope import EVERYTHING
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
    parse_command,
    protocol_run,
    respond_body,
    run_start_body,
    success,
)
from keel.threadstream.feed import thread_events

from .auth import authorize
from .deps import Services, check_uuid, raw_body, services
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
    queue = s.hub.subscribe_thread(thread_id)

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
        return subs.reconnect(params)
    raise CommandError("unknown_command", f"unknown command {method!r}")


async def _readable_or(request: Request, thread_id: str) -> None:
    try:
        await _readable(request, thread_id)
    except NotFound:
        raise CommandError("no_such_run", f"thread {thread_id} has no run") from None


async def _start(request: Request, thread_id: str, body: Row) -> Row:
    s = services(request)
    data = protocol_run(validate(RunCreate, body).normalized(False))
    return await _create_one(request, s, data, thread_id)


async def _run_start(request: Request, thread_id: str, params: Row) -> Row:
    run = await _start(request, thread_id, run_start_body(params))
    return {"run_id": run["run_id"]}


async def _respond(request: Request, thread_id: str, params: Row) -> Row:
    await _readable_or(request, thread_id)
    s = services(request)
    body = await respond_body(s.storage, thread_id, params, s.runs.wait)
    await _start(request, thread_id, body)
    return {}


# ------------------------------------------------------------------ WebSocket
WS_QUEUE = 10_000  # events buffered for one connection before it is told and closed
WS_OVERFLOW = 1013  # "try again later": the client was too slow; resume with `since`


@router.websocket("/threads/{thread_id}/stream/events")
async def stream_events_ws(websocket: WebSocket, thread_id: str) -> None:
    """Inbound text frames are commands (the SDK sends `subscription.subscribe`); outbound
    frames are their responses and the subscribed events. Auth does not cover WebSocket
    handshakes yet: with auth on, the connection is refused (1008)."""
    s: Services = websocket.app.state.keel
    await websocket.accept()
    if s.guard.enabled:
        await websocket.close(1008, "the WebSocket transport is not available with auth yet")
        return
    try:
        thread_id = check_uuid(thread_id, "thread_id")
        await ThreadService(s.storage, EVERYTHING).get(thread_id)
    except KeelError as exc:
        await websocket.close(1008, str(exc)[:120])
        return
    await _ws_session(websocket, s, thread_id)


async def _ws_session(websocket: WebSocket, s: Services, thread_id: str) -> None:
    out: asyncio.Queue[Row | None] = asyncio.Queue(maxsize=WS_QUEUE + 1)
    pumps: dict[str, asyncio.Task[None]] = {}
    subs = Subscriptions()
    writer = asyncio.create_task(_ws_writer(websocket, out))
    try:
        while not writer.done():
            receiving = asyncio.ensure_future(websocket.receive_text())
            await asyncio.wait({receiving, writer}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                break
            answer = _ws_command(receiving.result(), s, thread_id, subs, pumps, out)
            _offer(out, answer)
    except WebSocketDisconnect:
        pass
    finally:
        for task in [*pumps.values(), writer]:
            task.cancel()


def _ws_command(
    raw: str,
    s: Services,
    thread_id: str,
    subs: Subscriptions,
    pumps: dict[str, asyncio.Task[None]],
    out: asyncio.Queue[Row | None],
) -> Row:
    try:
        command = parse_command(orjson.loads(raw))
    except (orjson.JSONDecodeError, CommandError) as exc:
        return dict(error(None, "invalid_argument", getattr(exc, "message", str(exc))))
    try:
        if command.method == "subscription.subscribe":
            result = subs.subscribe(command.params)
            sub = parse_subscription(command.params)
            since = parse_since(command.params)
            pump = _ws_pump(s, thread_id, sub, since, out)
            pumps[result["subscription_id"]] = asyncio.create_task(pump)
        elif command.method == "subscription.unsubscribe":
            result = subs.unsubscribe(command.params)
            pumps.pop(str(command.params["subscription_id"])).cancel()
        else:
            raise CommandError("not_supported", "send this command to POST .../commands")
    except CommandError as exc:
        return dict(error(command.id, exc.code, exc.message))
    except KeelError as exc:
        return dict(error(command.id, "invalid_argument", str(exc)))
    return dict(success(command.id, result))


def _offer(out: asyncio.Queue[Row | None], frame: Row) -> bool:
    """Queue a frame. The last slot is kept for the end marker: a client too slow to take
    `maxsize - 1` frames gets the marker after every frame it was sent, so the `since` it is
    told to resume from loses nothing."""
    if out.qsize() < out.maxsize - 1:
        out.put_nowait(frame)
        return True
    if not out.full():
        out.put_nowait(None)
    return False


async def _ws_pump(
    s: Services, thread_id: str, sub: Any, since: int | None, out: asyncio.Queue[Row | None]
) -> None:
    queue = s.hub.subscribe_thread(thread_id)
    try:
        async for event in thread_events(s.storage, s.hub, thread_id, since, queue):
            if sub.wants(event) and not _offer(out, event):
                return
    finally:
        s.hub.unsubscribe_thread(thread_id, queue)


async def _ws_writer(websocket: WebSocket, out: asyncio.Queue[Row | None]) -> None:
    last_seq: int | None = None
    while True:
        frame = await out.get()
        if frame is None:
            gap = error(None, "resume_gap", f"too slow: reconnect with since={last_seq}")
            await websocket.send_text(dumps(gap).decode())
            await websocket.close(WS_OVERFLOW, "slow consumer")
            return
        if isinstance(frame.get("seq"), int):
            last_seq = frame["seq"]
        await websocket.send_text(dumps(frame).decode())
