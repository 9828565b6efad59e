"""`/mcp`: the MCP server's HTTP edge (Streamable HTTP, stateless JSON-RPC 2.0).

POST carries one JSON-RPC message (keel/protocols/mcp.py answers it); GET is 405 (no
server-initiated stream); DELETE ends nothing (there is no session state) and answers 200.
`initialize` hands out an `Mcp-Session-Id`: a random label the server keeps nothing for, which
lets a `notifications/cancelled` name the caller's own request id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Hashable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from keel import __version__
from keel.assistants import AssistantService
from keel.graphs import graph_schemas
from keel.protocols import mcp
from keel.replay import run_events
from keel.threads import ThreadService

from .assistants import _graph_of
from .auth import authorize, current_user
from .deps import Services, services
from .runs import _create_one
from .schemas import RunCreate, validate

router = APIRouter(tags=["mcp"])
SESSION_HEADER = "mcp-session-id"


class RequestHost:
    """What the request's user may list and run, as the assistants and runs routes allow it."""

    def __init__(self, request: Request, s: Services, request_id: Any = None) -> None:
        self.request, self.s, self.request_id = request, s, request_id

    async def assistants(self, offset: int, limit: int) -> list[dict[str, Any]]:
        value: dict[str, Any] = {"graph_id": None, "metadata": {}, "limit": limit, "offset": offset}
        scope = await authorize(self.request, "assistants", "search", value)
        svc = AssistantService(self.s.storage, self.s.graphs, scope)
        items, _ = await svc.search({"limit": limit, "offset": offset})
        return items

    async def input_schema(self, assistant: dict[str, Any]) -> dict[str, Any] | None:
        try:
            _, ctx = await _graph_of(self.request, assistant["assistant_id"])
            async with ctx as g:
                schema = graph_schemas(assistant["graph_id"], g).get("input_schema")
        except Exception as exc:  # a graph that cannot be built still gets a tool
            mcp.log.warning(
                "mcp: no input schema for assistant %s: %r", assistant["assistant_id"], exc
            )
            return None
        return schema if isinstance(schema, dict) else None

    async def start(
        self, assistant_id: str, arguments: dict[str, Any], context: Any, streamed: bool
    ) -> dict[str, Any]:
        raw: dict[str, Any] = {"assistant_id": assistant_id, "input": arguments}
        named = mcp.label(self.request.headers.get(SESSION_HEADER), self.request_id)
        if named is not None:
            raw["metadata"] = {mcp.LABEL_KEY: named}
        if context is not None:
            raw["context"] = context
        if streamed:
            raw["stream_mode"] = ["values", "updates"]
        data = validate(RunCreate, raw).normalized(True)
        return await _create_one(self.request, self.s, data, None)

    async def cancel_labelled(self, label: str) -> int:
        """Cancel the active run of the call `label` names, wherever it is held and runs
        (threads the caller may update; the call's stateless thread carries the label)."""
        s, metadata = self.s, {mcp.LABEL_KEY: label}
        value = {"thread_id": None, "action": "interrupt", "metadata": metadata}
        scope = await authorize(self.request, "threads", "update", value)
        threads, _ = await ThreadService(s.storage, scope).search(
            {"metadata": metadata, "status": "busy", "limit": 10}
        )
        run_ids = []
        async with s.storage.read() as tx:
            for thread in threads:
                runs = await tx.list_runs(thread["thread_id"], None, 10, 0)
                run_ids += [r["run_id"] for r in runs if r["status"] in ("pending", "running")]
        if not run_ids:
            return 0
        return await s.runs.cancel(None, run_ids, None, "interrupt", scope=scope)

    async def wait(self, run: dict[str, Any]) -> Any:
        return await self.s.runs.wait(run)

    async def events(self, run: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        async for ev in run_events(self.s.storage, self.s.hub, run["run_id"], run["thread_id"], 0):
            yield ev.event, orjson.loads(ev.data)

    async def cancel(self, run: dict[str, Any]) -> None:
        await self.s.runs.cancel(run["thread_id"], [run["run_id"]], None, "interrupt")


def _inflight(request: Request) -> mcp.InFlight:
    state = request.app.state
    if getattr(state, "keel_mcp_inflight", None) is None:
        state.keel_mcp_inflight = mcp.InFlight()
    found: mcp.InFlight = state.keel_mcp_inflight
    return found


def _key(request: Request, request_id: Any) -> Hashable:
    user = current_user(request)
    who = user.identity if user is not None else None
    return (request.headers.get(SESSION_HEADER), who, request_id)


async def _cancel(request: Request, request_id: Any) -> None:
    """Cancel the caller's call `request_id`: held here, or by the label on its run."""
    if await _inflight(request).cancel(_key(request, request_id)):
        return
    named = mcp.label(request.headers.get(SESSION_HEADER), request_id)
    if named is not None:
        await RequestHost(request, services(request)).cancel_labelled(named)


def _json(
    message: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(message), status, headers, media_type="application/json")


@router.get("/mcp", include_in_schema=False)
@router.get("/mcp/", include_in_schema=False)
async def get_mcp() -> Response:
    return Response(status_code=405, headers={"Allow": "POST, DELETE"})


@router.delete("/mcp", include_in_schema=False)
@router.delete("/mcp/", include_in_schema=False)
async def delete_mcp() -> Response:
    return Response(status_code=200)


@router.post("/mcp", include_in_schema=False)
@router.post("/mcp/", include_in_schema=False)
async def post_mcp(request: Request) -> Response:
    """One JSON-RPC message: a request gets its answer (JSON, or SSE for a tools/call asking
    for progress), a notification or a response 202; a malformed one its JSON-RPC error."""
    body = await request.body()
    try:
        msg = mcp.parse(body)
    except mcp.RpcError as exc:
        return _json(mcp.error(exc.id, exc.code, exc.message), 400)
    want_json, want_sse = mcp.accepts(request.headers.get("accept", ""))
    if not (want_json or want_sse):
        detail = "Not Acceptable: Accept must include application/json or text/event-stream"
        return _json(mcp.error(msg.id, mcp.INVALID_REQUEST, detail), 400)
    if not msg.is_request:
        if msg.method == "notifications/cancelled":
            await _cancel(request, msg.params.get("requestId"))
        return Response(status_code=202)
    try:
        return await _request(request, msg, want_sse)
    except mcp.RpcError as exc:
        return _json(mcp.error(msg.id, exc.code, exc.message))


async def _request(request: Request, msg: mcp.Message, want_sse: bool) -> Response:
    s = services(request)
    host = RequestHost(request, s, msg.id)
    if msg.method == "initialize":
        result = mcp.initialize(msg.params, __version__)
        session = request.headers.get(SESSION_HEADER) or uuid.uuid4().hex
        return _json(mcp.answer(msg.id, result), headers={"Mcp-Session-Id": session})
    if msg.method == "ping":
        return _json(mcp.answer(msg.id, {}))
    if msg.method == "tools/list":
        return _json(mcp.answer(msg.id, await mcp.list_tools(host, msg.params)))
    if msg.method == "tools/call":
        call = await mcp.check_call(host, msg.params)
        streamed = want_sse and call.progress is not None
        run = await mcp.start(host, call, streamed)
        inflight, key = _inflight(request), _key(request, msg.id)
        inflight.add(key, host, run)
        if streamed and call.progress is not None:
            return _streamed(inflight, key, host, msg, call.progress, run)
        return _json(await _finish(inflight, key, host, msg, run))
    raise mcp.RpcError(mcp.METHOD_NOT_FOUND, f"Method not found: {msg.method}")


async def _finish(
    inflight: mcp.InFlight,
    key: Hashable,
    host: RequestHost,
    msg: mcp.Message,
    run: dict[str, Any],
) -> dict[str, Any]:
    """Wait for the call's run (registered for cancellation until then); its answer."""
    try:
        value = await host.wait(run)
    finally:
        cancelled = inflight.discard(key)
    if cancelled:
        return mcp.error(msg.id, mcp.CANCELLED, "Request cancelled")
    return mcp.answer(msg.id, mcp.call_result(value, run))


def _streamed(
    inflight: mcp.InFlight,
    key: Hashable,
    host: RequestHost,
    msg: mcp.Message,
    token: str | int,
    run: dict[str, Any],
) -> StreamingResponse:
    """SSE: progress notifications while the run streams, then the call's answer."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for note in mcp.progress(host, run, token):
                yield _sse(note)
            yield _sse(await _finish(inflight, key, host, msg, run))
        finally:
            inflight.discard(key)

    headers = {"Cache-Control": "no-store"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _sse(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"
