"""`/assistants` routes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from keel.assistants import AssistantService, ThreadDeleteScope
from keel.auth.scope import Scope
from keel.errors import InvalidInput, KeelError, NotFound
from keel.graphs import drawable, graph_schemas, system_assistant_id
from keel.store_orgs import for_user

from .auth import authorize, current_user
from .deps import body, check_uuid, query_bool, query_list, services
from .responses import JSON, paginated, select_fields
from .schemas import (
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    SetLatest,
    VersionsSearch,
)

router = APIRouter(tags=["assistants"])


async def _svc(request: Request, action: str, value: dict[str, Any]) -> AssistantService:
    """Assistants as the request's user may `action` them (authorized by their handlers)."""
    scope = await authorize(request, "assistants", action, value)
    s = services(request)
    return AssistantService(s.storage, s.graphs, scope)


def _searched(q: dict[str, Any]) -> dict[str, Any]:
    return {
        "graph_id": q.get("graph_id"),
        "metadata": q.get("metadata") or {},
        "limit": q.get("limit", 10),
        "offset": q.get("offset", 0),
    }


@router.post("/assistants")
async def create(request: Request) -> Any:
    data = (await body(request, AssistantCreate)).given()
    AssistantService(services(request).storage, services(request).graphs).check_graph(
        data["graph_id"]
    )
    data["assistant_id"] = data.get("assistant_id") or str(uuid.uuid4())
    value = {k: data.get(k) for k in ("assistant_id", "graph_id", "context", "name")}
    value["config"] = dict(data.get("config") or {})
    value["metadata"] = dict(data.get("metadata") or {})
    svc = await _svc(request, "create", value)
    data["metadata"] = value["metadata"]  # a handler may have stamped it (an owner)
    return JSON(await svc.create(data))


@router.post("/assistants/search")
async def search(request: Request) -> Any:
    q = (await body(request, AssistantSearch)).given()
    items, more = await (await _svc(request, "search", _searched(q))).search(q)
    return paginated(
        select_fields(items, q.get("select")), q.get("offset", 0), q.get("limit", 10), more
    )


@router.post("/assistants/count")
async def count(request: Request) -> Any:
    q = (await body(request, AssistantSearch)).given()
    value = {**_searched(q), "limit": 0, "offset": 0}
    return JSON(await (await _svc(request, "search", value)).count(q))


async def _reader(request: Request, assistant_id: str) -> AssistantService:
    return await _svc(request, "read", {"assistant_id": assistant_id})


@router.get("/assistants/{assistant_id}")
async def get(request: Request, assistant_id: str) -> Any:
    assistant_id = check_uuid(assistant_id, "assistant_id")
    return JSON(await (await _reader(request, assistant_id)).get(assistant_id))


@router.patch("/assistants/{assistant_id}")
async def patch(request: Request, assistant_id: str) -> Any:
    data = (await body(request, AssistantPatch)).given()
    assistant_id = check_uuid(assistant_id, "assistant_id")
    value = {k: data.get(k) for k in ("graph_id", "context", "name")}
    value.update(
        assistant_id=assistant_id,
        config=dict(data.get("config") or {}),
        metadata=dict(data.get("metadata") or {}),
    )
    svc = await _svc(request, "update", value)
    if data.get("metadata") is not None or value["metadata"]:
        data["metadata"] = value["metadata"]
    return JSON(await svc.patch(assistant_id, data))


def _thread_deleter(request: Request) -> ThreadDeleteScope | None:
    """Whether the caller may delete each thread (threads.delete), as the reference asks when
    an assistant goes with its threads: a refused thread is left alone, not an error."""
    if not services(request).guard.enabled:
        return None

    async def scope_of(thread_id: str) -> Scope | None:
        try:
            return await authorize(request, "threads", "delete", {"thread_id": thread_id})
        except KeelError as exc:
            if 400 <= exc.status_code < 500:
                return None
            raise

    return scope_of


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete(request: Request, assistant_id: str) -> Response:
    s = services(request)
    assistant_id = check_uuid(assistant_id, "assistant_id")
    svc = await _svc(request, "delete", {"assistant_id": assistant_id})
    await svc.delete(
        assistant_id, query_bool(request, "delete_threads"), s.runs, _thread_deleter(request)
    )
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def versions(request: Request, assistant_id: str) -> Any:
    q = (await body(request, VersionsSearch)).given()
    assistant_id = check_uuid(assistant_id, "assistant_id")
    return JSON(await (await _reader(request, assistant_id)).versions(assistant_id, q))


@router.post("/assistants/{assistant_id}/latest")
async def latest(request: Request, assistant_id: str) -> Any:
    version = (await body(request, SetLatest)).version
    assistant_id = check_uuid(assistant_id, "assistant_id")
    svc = await _svc(request, "update", {"assistant_id": assistant_id, "version": version})
    return JSON(await svc.set_latest(assistant_id, version))


async def _graph_of(request: Request, assistant_id: str) -> Any:
    s = services(request)
    if assistant_id in s.graphs:
        assistant_id = system_assistant_id(assistant_id)
    assistant_id = check_uuid(assistant_id, "assistant_id")
    assistant = await (await _reader(request, assistant_id)).get(assistant_id)
    entry = s.graphs.get(assistant["graph_id"])
    config = {"configurable": {"assistant_id": assistant_id}, **assistant["config"]}
    store = for_user(s.storage.store, current_user(request), s.settings.auth.builtin)
    return assistant, entry.build(config, None, store, "assistants.read")


@router.get("/assistants/{assistant_id}/graph")
async def graph(request: Request, assistant_id: str) -> Any:
    raw = query_list(request, "xray")
    xray: int | bool = False
    if raw:
        value = raw[-1]
        if value.lower() in ("true", "false"):
            xray = value.lower() == "true"
        else:
            try:
                xray = int(value)
            except ValueError:
                raise InvalidInput("Invalid xray value") from None
            if xray <= 0:
                raise InvalidInput("Invalid xray value")
    _, ctx = await _graph_of(request, assistant_id)
    async with ctx as g:
        return JSON(drawable(g, xray))


@router.get("/assistants/{assistant_id}/schemas")
async def schemas(request: Request, assistant_id: str) -> Any:
    assistant, ctx = await _graph_of(request, assistant_id)
    async with ctx as g:
        return JSON(graph_schemas(assistant["graph_id"], g))


@router.get("/assistants/{assistant_id}/subgraphs")
@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def subgraphs(request: Request, assistant_id: str, namespace: str | None = None) -> Any:
    recurse = query_bool(request, "recurse")
    _, ctx = await _graph_of(request, assistant_id)
    out: dict[str, Any] = {}
    async with ctx as g:
        async for ns, sub in g.aget_subgraphs(namespace=namespace, recurse=recurse):
            schemas = graph_schemas(ns, sub)
            schemas.pop("graph_id")
            out[ns] = schemas
    if namespace is not None and not out:
        raise NotFound(f"Subgraph '{namespace}' not found")
    return JSON(out)
