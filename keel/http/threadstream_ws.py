"""`WS /threads/{id}/stream/events`: the thread-centric ("v3") protocol's WebSocket transport.
See docs/thread-stream.md ("WebSocket").

The handshake is authenticated by the edge (keel/http/auth.py) like any request; the thread must
be readable by the user (`threads.read`), else the connection is accepted and closed with
4000 + the HTTP status (4404...), the code the SDK reads as "do not retry" (1011 for a server
error). Inbound text frames
are commands; outbound frames are their responses and the subscriptions' events.

Memory is bounded by `http.ws_send_queue` (B): the outbound queue holds at most B frames and a
subscription waits for room (its stored history costs nothing while it waits); the live events
that reach a waiting subscription are held in its thread-feed queue, at most B of them. Past
that, the subscription re-reads the events it missed from the runs' logs once it has room
(keel/threadstream/feed.py): a slow client is never cut off and never misses an event. A
subscription whose read fails ends the connection with an `unknown_error` frame and 1011.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from keel.errors import KeelError
from keel.serde import dumps
from keel.storage.tx import Row
from keel.threads import ThreadService
from keel.threadstream.channels import Subscription, parse_since, parse_subscription
from keel.threadstream.commands import (
    CommandError,
    Subscriptions,
    error,
    parse_command,
    reconnect_since,
    success,
)
from keel.threadstream.feed import thread_events

from .auditing import record_refusal
from .auth import authorize, close_reason
from .deps import Services, check_uuid

router = APIRouter(tags=["threads"])
log = logging.getLogger("keel.http")

FAILED = 1011  # the stream ended on a server error (its read failed)
REFUSED = 4000  # + the HTTP status of the refusal: 4404 (no such thread), 4403, 4422

@dataclasses.dataclass(frozen=True)
class End:
    """The queue's last item: the connection ends with this close code."""

    code: int
    detail: str = ""


Token = object  # identifies one pump of a subscription; frames of a replaced pump are dropped
Item = tuple[Token | None, Row] | End


@router.websocket("/threads/{thread_id}/stream/events")
async def stream_events_ws(websocket: WebSocket, thread_id: str) -> None:
    s: Services = websocket.app.state.keel
    try:
        thread_id = check_uuid(thread_id, "thread_id")
        scope = await authorize(websocket, "threads", "read", {"thread_id": thread_id})
        await ThreadService(s.storage, scope).get(thread_id)
    except KeelError as exc:
        if s.guard.enabled:
            await record_refusal(s.guard.audit, websocket.scope, exc)
        await websocket.accept()
        code = FAILED if exc.status_code >= 500 else REFUSED + exc.status_code
        await websocket.close(code, close_reason(exc.detail))
        return
    await websocket.accept()
    await Session(websocket, s, thread_id, s.settings.http.ws_send_queue).serve()


class Session:
    """One connection: its subscriptions, a pump per subscription, one writer."""

    def __init__(self, websocket: WebSocket, s: Services, thread_id: str, bound: int) -> None:
        self.websocket = websocket
        self.s = s
        self.thread_id = thread_id
        self.bound = bound
        self.out: asyncio.Queue[Item] = asyncio.Queue(maxsize=bound)
        self.subs = Subscriptions()
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.starting: list[tuple[str, Subscription, int | None, Token]] = []
        self.tokens: dict[str, Token] = {}  # subscription id -> its current pump's token
        self.sent: dict[str, int] = {}  # subscription id -> the last seq its client was sent

    async def serve(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            while not writer.done():
                raw = await self._next(writer)
                if raw is None:
                    break
                answer = (None, await self._command(raw))
                await _unless_done(self.out.put(answer), writer)
                self._launch()
        except WebSocketDisconnect:
            pass
        finally:
            tasks = [*self.pumps.values(), writer]
            for task in tasks:
                task.cancel()
            # Their exceptions (a send to a client that left) are retrieved, not logged.
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _next(self, writer: asyncio.Task[None]) -> str | None:
        """The next inbound frame's text; None once the client left or the writer ended."""
        receiving = asyncio.ensure_future(self.websocket.receive())
        await _unless_done(receiving, writer)
        if not receiving.done():
            return None
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else (message.get("bytes") or b"").decode(errors="replace")

    # ----------------------------------------------------------------- commands
    async def _command(self, raw: str) -> Row:
        try:
            command = parse_command(orjson.loads(raw))
        except (orjson.JSONDecodeError, CommandError) as exc:
            return dict(error(None, "invalid_argument", getattr(exc, "message", str(exc))))
        try:
            result = await self._dispatch(command.method, command.params)
        except CommandError as exc:
            return dict(error(command.id, exc.code, exc.message))
        except KeelError as exc:
            return dict(error(command.id, "invalid_argument", str(exc)))
        return dict(success(command.id, result))

    async def _dispatch(self, method: str, params: Row) -> Row:
        if method == "subscription.subscribe":
            since = parse_since(params)
            result = self.subs.subscribe(params)
            self._start(result["subscription_id"], since)
            return result
        if method == "subscription.unsubscribe":
            result = self.subs.unsubscribe(params)
            sid = str(params["subscription_id"])
            self.tokens.pop(sid)  # its queued frames are dropped
            self.pumps.pop(sid).cancel()
            self.sent.pop(sid, None)
            return result
        if method == "subscription.reconnect":
            return await self._reconnect(params)
        raise CommandError("not_supported", "send this command to POST .../commands")

    async def _reconnect(self, params: Row) -> Row:
        """Replay the named subscriptions (all by default) from `last_event_id`/`since`:
        what their old pumps queued and did not send yet is dropped, so nothing comes twice."""
        sids = self.subs.reconnect(params)
        since = reconnect_since(params)
        async with self.s.storage.read() as tx:
            run = await tx.get_run(str(params["run_id"]))
        if run is None or run["thread_id"] != self.thread_id:
            raise CommandError("no_such_run", f"no run {params['run_id']} on this thread")
        for sid in sids:
            self.pumps.pop(sid).cancel()
            self._start(sid, since)
        return {"restored": bool(sids)}

    def _start(self, sid: str, since: int | None) -> None:
        """A pump for the subscription, launched once the command's answer is queued (its
        events come after it)."""
        token = Token()
        self.tokens[sid] = token
        self.sent[sid] = since or 0
        sub = parse_subscription(self.subs.active[sid])
        self.starting.append((sid, sub, since, token))

    def _launch(self) -> None:
        for sid, sub, since, token in self.starting:
            self.pumps[sid] = asyncio.create_task(self._pump(sub, since, token))
        self.starting.clear()

    # -------------------------------------------------------------- the frames
    async def _pump(self, sub: Subscription, since: int | None, token: Token) -> None:
        hub = self.s.hub
        queue = hub.subscribe_thread(self.thread_id, self.bound, sub.keeps)
        try:
            async for event in thread_events(self.s.storage, hub, self.thread_id, since, queue):
                if sub.wants(event):
                    await self.out.put((token, event))  # waits while the client is behind
        except Exception as exc:  # the stream's read failed (storage unavailable...)
            log.exception("thread %s: a WebSocket subscription's read failed", self.thread_id)
            await self.out.put(End(FAILED, type(exc).__name__))
        finally:
            hub.unsubscribe_thread(self.thread_id, queue)

    async def _write(self) -> None:
        while True:
            item = await self.out.get()
            if isinstance(item, End):
                await self._end(item)
                return
            token, frame = item
            sid = self._owner(token)
            if token is not None and sid is None:
                continue  # queued by a pump since replaced or unsubscribed
            await self.websocket.send_text(dumps(frame).decode())
            if sid is not None and isinstance(frame.get("seq"), int):
                self.sent[sid] = frame["seq"]

    def _owner(self, token: Token | None) -> str | None:
        for sid, current in self.tokens.items():
            if current is token:
                return sid
        return None

    async def _end(self, end: End) -> None:
        since = min(self.sent.values(), default=0)
        # The cause is in the server's log, not sent.
        message = f"thread stream failed ({end.detail}); reconnect with since={since}"
        await self.websocket.send_text(dumps(error(None, "unknown_error", message)).decode())
        await self.websocket.close(end.code, "thread stream failed")


async def _unless_done(step: Any, writer: asyncio.Task[None]) -> None:
    """Await `step` (a coroutine or future) unless the writer ends first (then it is cancelled:
    nothing would ever take what it waits to put)."""
    future = asyncio.ensure_future(step)
    await asyncio.wait({future, writer}, return_when=asyncio.FIRST_COMPLETED)
    if not future.done():
        future.cancel()
