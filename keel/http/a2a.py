"""`/a2a/{assistant_id}`: A2A's HTTP edge (JSON-RPC 2.0 over POST, agent cards over GET).

Keel's protocol logic is keel/protocols/a2a.py and a2a_run.py; here the request's user's view
of assistants, threads and runs (the same authorization as the assistants, threads and runs
routes) and the HTTP shapes: JSON-RPC errors are HTTP 200 (as the reference and JSON-RPC over
HTTP do); a streamed send is SSE, one JSON-RPC response per event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from keel import __version__
from keel.assistants import AssistantService
from keel.auth.scope import EVERYTHING
from keel.errors import Forbidden, KeelError, NotFound, Unauthorized
from keel.graphs import graph_schemas, system_assistant_id
from keel.protocols import a2a, a2a_run
from keel.replay import run_events
from keel.store_orgs import for_user

from .assistants import _reader
from .auth import authorize, current_user
from .deps import Services, check_uuid, services
from .runs import _create_one
from .schemas import Body, RunCreate, validate

log = logging.getLogger("keel.a2a")


class JsonRpcRequest(Body):
    """A JSON-RPC 2.0 request (for /openapi.json: the route parses its body itself, answering
    a malformed one with a JSON-RPC error, not a 422)."""

    jsonrpc: Literal["2.0"]
    id: str | int | None = None
    method: str
    params: dict[str, Any] | None = None


router = APIRouter(tags=["a2a"])
RUNS_SCANNED = 100  # a task's resume runs are found among its thread's newest runs


class RequestHost:
    """What the request's user may read and run, as the HTTP routes allow it."""

    def __init__(self, request: Request, s: Services) -> None:
        self.request, self.s = request, s

    async def assistant(self, assistant_id: str) -> dict[str, Any]:
        """The assistant; a graph's system assistant, which every caller may run (as the runs
        routes: no `assistants.read`), is read unscoped like the run's creation reads it."""
        if assistant_id in self.s.graphs:
            assistant_id = system_assistant_id(assistant_id)
        assistant_id = check_uuid(assistant_id, "assistant_id")
        if self.s.runs.is_system_assistant(assistant_id):
            svc = AssistantService(self.s.storage, self.s.graphs, EVERYTHING)
        else:
            svc = await _reader(self.request, assistant_id)
        found: dict[str, Any] = await svc.get(assistant_id)
        return found

    async def schema(self, assistant: dict[str, Any]) -> dict[str, Any]:
        entry = self.s.graphs.get(assistant["graph_id"])
        config = {
            "configurable": {"assistant_id": assistant["assistant_id"]},
            **assistant["config"],
        }
        user = current_user(self.request)
        store = for_user(self.s.storage.store, user, self.s.settings.auth.builtin)
        async with entry.build(config, None, store, "assistants.read") as g:
            schemas = graph_schemas(assistant["graph_id"], g)
        schema = schemas.get("input_schema") or schemas.get("state_schema") or {}
        return schema if isinstance(schema, dict) else {}

    async def input_fields(self, assistant: dict[str, Any]) -> dict[str, Any]:
        fields = (await self.schema(assistant)).get("properties") or {}
        return fields if isinstance(fields, dict) else {}

    async def thread(self, thread_id: str) -> dict[str, Any] | None:
        read = await authorize(self.request, "threads", "read", {"thread_id": thread_id})
        async with self.s.storage.read() as tx:
            found: dict[str, Any] | None = await tx.get_thread_in(
                thread_id, *read.where(tx.dialect)
            )
        return found

    async def run(self, run_id: str) -> dict[str, Any] | None:
        async with self.s.storage.read() as tx:
            run = await tx.get_run(run_id)
        if run is None or await self.thread(run["thread_id"]) is None:
            return None
        return dict(run)

    async def runs_of(self, thread_id: str) -> list[dict[str, Any]]:
        if await self.thread(thread_id) is None:
            return []
        async with self.s.storage.read() as tx:
            return [dict(r) for r in await tx.list_runs(thread_id, None, RUNS_SCANNED, 0)]

    async def start(
        self,
        assistant_id: str,
        thread_id: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
        streamed: bool,
    ) -> dict[str, Any]:
        raw: dict[str, Any] = {"assistant_id": assistant_id, "if_not_exists": "create", **payload}
        if metadata:
            raw["metadata"] = metadata
        if streamed:
            raw["stream_mode"] = ["updates"]
        data = validate(RunCreate, raw).normalized(False)
        run: dict[str, Any] = await _create_one(self.request, self.s, data, thread_id)
        return run

    async def wait(self, run: dict[str, Any]) -> Any:
        return await self.s.runs.wait(run)

    async def events(self, run: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        async for ev in run_events(self.s.storage, self.s.hub, run["run_id"], run["thread_id"], 0):
            yield ev.event, orjson.loads(ev.data)

    async def cancel(self, run: dict[str, Any]) -> bool:
        value = {"thread_id": run["thread_id"], "run_id": run["run_id"], "action": "interrupt"}
        await authorize(self.request, "threads", "update", value)
        return bool(await self.s.runs.cancel(run["thread_id"], [run["run_id"]], None, "interrupt"))


def _json(message: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(message), status, media_type="application/json")


def _rpc_error(exc: KeelError) -> a2a.RpcError:
    """A Keel error inside a method → its JSON-RPC error (auth errors stay HTTP errors)."""
    if isinstance(exc, (Unauthorized, Forbidden)):
        raise exc
    code = a2a.INVALID_PARAMS if exc.status_code < 500 else a2a.INTERNAL_ERROR
    return a2a.RpcError(code, exc.detail)


# ------------------------------------------------------------------ agent cards
async def _card(request: Request, assistant_id: str) -> Response:
    host = RequestHost(request, services(request))
    assistant = await host.assistant(assistant_id)
    schema = await host.schema(assistant)
    fields = schema.get("properties") or {}
    required = [str(r) for r in schema.get("required") or []]
    base = str(request.base_url).rstrip("/")
    url = f"{base}/a2a/{assistant_id}"
    return _json(a2a_run.card(assistant, fields, required, url, __version__))


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
@router.get("/a2a/{assistant_id}/.well-known/agent.json")
@router.get("/a2a/{assistant_id}", include_in_schema=False)
async def agent_card(request: Request, assistant_id: str) -> Response:
    """The assistant's A2A agent card."""
    return await _card(request, assistant_id)


@router.get("/.well-known/agent-card.json")
async def root_agent_card(request: Request) -> Response:
    """The agent card of the assistant named by `?assistant_id=`."""
    assistant_id = request.query_params.get("assistant_id")
    if not assistant_id:
        raise NotFound("Missing required query parameter: assistant_id")
    return await _card(request, assistant_id)


# ------------------------------------------------------------------ JSON-RPC
@router.post("/a2a/{assistant_id}")
@router.post("/a2a/{assistant_id}/", include_in_schema=False)
async def post_a2a(request: Request, assistant_id: str) -> Response:
    """One JSON-RPC request: `SendMessage`/`message/send`, `SendStreamingMessage`/
    `message/stream` (SSE), `GetTask`/`tasks/get`, `CancelTask`/`tasks/cancel`."""
    try:
        call = a2a.parse(await request.body())
    except a2a.RpcError as exc:
        return _json(a2a.error(exc.id, exc.code, exc.message))
    host = RequestHost(request, services(request))
    try:
        if call.method == "SendStreamingMessage":
            started = await a2a_run.start(host, assistant_id, call.params, True)
            return _streamed(call, a2a_run.stream(host, started, call.legacy))
        return _json(a2a.answer(call, await _answer(host, call, assistant_id)))
    except KeelError as exc:
        err = _rpc_error(exc)
        return _json(a2a.error(call.id, err.code, err.message))
    except a2a.RpcError as exc:
        return _json(a2a.error(call.id, exc.code, exc.message))
    except Exception:  # a server fault: JSON-RPC's internal error, logged
        log.exception("a2a: %s failed for assistant %s", call.method, assistant_id)
        return _json(a2a.error(call.id, a2a.INTERNAL_ERROR, "Internal error"))


async def _answer(host: RequestHost, call: a2a.Call, assistant_id: str) -> Any:
    if call.method == "SendMessage":
        task = await a2a_run.send(host, assistant_id, call.params, call.legacy)
        return task if call.legacy else {"task": task}
    if call.method == "GetTask":
        return await a2a_run.get_task(host, call.params, call.legacy)
    return await a2a_run.cancel_task(host, call.params, call.legacy)


def _streamed(call: a2a.Call, events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield _sse(a2a.answer(call, event))
        except a2a.RpcError as exc:
            yield _sse(a2a.error(call.id, exc.code, exc.message))
        except Exception:  # the stream's own fault, after the 200: its last event says so
            log.exception("a2a: stream of %s failed", call.method)
            yield _sse(a2a.error(call.id, a2a.INTERNAL_ERROR, "Internal error"))

    headers = {"Cache-Control": "no-store"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _sse(message: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(message) + b"\n\n"
