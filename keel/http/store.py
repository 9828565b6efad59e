"""`/store` routes: long-term memory items and namespaces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keel.errors import BadRequest
from keel.memory import MemoryService, namespace_of

from .deps import body, query_list, services
from .responses import JSON
from .schemas import StoreDelete, StoreNamespaces, StorePut, StoreSearch

router = APIRouter(tags=["store"])


def _svc(request: Request) -> MemoryService:
    return MemoryService(services(request).storage.store)


@router.put("/store/items", status_code=204)
async def put_item(request: Request) -> Response:
    parsed = await body(request, StorePut)
    extra = {"ttl": parsed.ttl} if "ttl" in parsed.model_fields_set else {}
    await _svc(request).put(
        namespace_of(parsed.namespace), parsed.key, parsed.value, parsed.index, **extra
    )
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(request: Request) -> Any:
    keys = query_list(request, "key")
    if not keys:
        raise BadRequest("Key is required")
    raw_ns = query_list(request, "namespace")
    labels = raw_ns[-1].split(".") if raw_ns else []
    refresh = query_list(request, "refresh_ttl")
    refresh_ttl = None if not refresh else refresh[-1].lower() in ("true", "1", "yes")
    return JSON(await _svc(request).get(namespace_of(labels), keys[-1], refresh_ttl))


@router.delete("/store/items", status_code=204)
async def delete_item(request: Request) -> Response:
    parsed = await body(request, StoreDelete)
    await _svc(request).delete(namespace_of(parsed.namespace), parsed.key)
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(request: Request) -> Any:
    q = await body(request, StoreSearch)
    items = await _svc(request).search(
        namespace_of(q.namespace_prefix, "namespace_prefix"),
        filter=q.filter,
        limit=q.limit,
        offset=q.offset,
        query=q.query,
        refresh_ttl=q.refresh_ttl,
    )
    return JSON({"items": items})


@router.post("/store/namespaces")
async def list_namespaces(request: Request) -> Any:
    q = await body(request, StoreNamespaces)
    found = await _svc(request).namespaces(
        namespace_of(q.prefix, "prefix") if q.prefix else None,
        namespace_of(q.suffix, "suffix") if q.suffix else None,
        q.max_depth,
        q.limit,
        q.offset,
    )
    return JSON({"namespaces": found})
