"""`/assistants` routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keel.assistants import AssistantService
from keel.errors import InvalidInput, NotFound
from keel.graphs import drawable, graph_schemas, system_assistant_id

from .deps import Services, body, check_uuid, query_bool, query_list, services
from .responses import JSON, paginated, select_fields
from .schemas import (
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    SetLatest,
    VersionsSearch,
)

router = APIRouter(tags=["assistants"])


def _svc(request: Request) -> AssistantService:
    s = services(request)
    return AssistantService(s.storage, s.graphs)


@router.post("/assistants")
async def create(request: Request) -> Any:
    data = (await body(request, AssistantCreate)).given()
    return JSON(await _svc(request).create(data))


@router.post("/assistants/search")
async def search(request: Request) -> Any:
    q = (await body(request, AssistantSearch)).given()
    items, more = await _svc(request).search(q)
    return paginated(
        select_fields(items, q.get("select")), q.get("offset", 0), q.get("limit", 10), more
    )


@router.post("/assistants/count")
async def count(request: Request) -> Any:
    q = (await body(request, AssistantSearch)).given()
    return JSON(await _svc(request).count(q))


@router.get("/assistants/{assistant_id}")
async def get(request: Request, assistant_id: str) -> Any:
    return JSON(await _svc(request).get(check_uuid(assistant_id, "assistant_id")))


@router.patch("/assistants/{assistant_id}")
async def patch(request: Request, assistant_id: str) -> Any:
    data = (await body(request, AssistantPatch)).given()
    return JSON(await _svc(request).patch(check_uuid(assistant_id, "assistant_id"), data))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete(request: Request, assistant_id: str) -> Response:
    s = services(request)
    await _svc(request).delete(
        check_uuid(assistant_id, "assistant_id"),
        query_bool(request, "delete_threads"),
        s.runs,
    )
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def versions(request: Request, assistant_id: str) -> Any:
    q = (await body(request, VersionsSearch)).given()
    return JSON(await _svc(request).versions(check_uuid(assistant_id, "assistant_id"), q))


@router.post("/assistants/{assistant_id}/latest")
async def latest(request: Request, assistant_id: str) -> Any:
    version = (await body(request, SetLatest)).version
    return JSON(await _svc(request).set_latest(check_uuid(assistant_id, "assistant_id"), version))


async def _graph_of(s: Services, request: Request, assistant_id: str) -> Any:
    if assistant_id in s.graphs:
        assistant_id = system_assistant_id(assistant_id)
    assistant = await AssistantService(s.storage, s.graphs).get(
        check_uuid(assistant_id, "assistant_id")
    )
    entry = s.graphs.get(assistant["graph_id"])
    config = {"configurable": {"assistant_id": assistant_id}, **assistant["config"]}
    return assistant, entry.build(config, None, s.storage.store, "assistants.read")


@router.get("/assistants/{assistant_id}/graph")
async def graph(request: Request, assistant_id: str) -> Any:
    s = services(request)
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
    _, ctx = await _graph_of(s, request, assistant_id)
    async with ctx as g:
        return JSON(drawable(g, xray))


@router.get("/assistants/{assistant_id}/schemas")
async def schemas(request: Request, assistant_id: str) -> Any:
    s = services(request)
    assistant, ctx = await _graph_of(s, request, assistant_id)
    async with ctx as g:
        return JSON(graph_schemas(assistant["graph_id"], g))


@router.get("/assistants/{assistant_id}/subgraphs")
@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def subgraphs(request: Request, assistant_id: str, namespace: str | None = None) -> Any:
    s = services(request)
    recurse = query_bool(request, "recurse")
    _, ctx = await _graph_of(s, request, assistant_id)
    out: dict[str, Any] = {}
    async with ctx as g:
        async for ns, sub in g.aget_subgraphs(namespace=namespace, recurse=recurse):
            schemas = graph_schemas(ns, sub)
            schemas.pop("graph_id")
            out[ns] = schemas
    if namespace is not None and not out:
        raise NotFound(f"Subgraph '{namespace}' not found")
    return JSON(out)
