"""`/store` routes: long-term memory items and namespaces.

Each route builds the value the reference gives `@auth.on.store.*` handlers (namespaces as
tuples); a handler may rewrite it (`value["namespace"] = (ctx.user.identity, *ns)`), and the
rewritten namespace is checked again. Under built-in auth each caller works in their
organisation's part of the store (`keel.store_orgs`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from langgraph.store.base import NOT_PROVIDED

from keel.auth.scope import Scope
from keel.errors import BadRequest
from keel.memory import MemoryService, namespace_of
from keel.store_orgs import for_user

from .auth import authorize, current_user
from .deps import body, query_list, services
from .responses import JSON
from .schemas import StoreDelete, StoreNamespaces, StorePut, StoreSearch

router = APIRouter(tags=["store"])


async def _svc(request: Request, action: str, value: dict[str, Any]) -> tuple[MemoryService, Scope]:
    """The store as the request's user may `action` it, and the scope their handler gave."""
    scope = await authorize(request, "store", action, value)
    s = services(request)
    view = for_user(s.storage.store, current_user(request), s.settings.auth.builtin)
    return MemoryService(s.storage.store, view), scope


def _optional(labels: Any, what: str) -> tuple[str, ...] | None:
    return None if labels is None else namespace_of(labels, what)


@router.put("/store/items", status_code=204)
async def put_item(request: Request) -> Response:
    parsed = await body(request, StorePut)
    value: dict[str, Any] = {
        "namespace": namespace_of(parsed.namespace),
        "key": parsed.key,
        "value": parsed.value,
        "index": parsed.index,
        "ttl": parsed.ttl,
    }
    svc, _ = await _svc(request, "put", value)
    given = "ttl" in parsed.model_fields_set or value["ttl"] is not None
    await svc.put(
        namespace_of(value["namespace"]),
        value["key"],
        value["value"],
        value["index"],
        value["ttl"] if given else NOT_PROVIDED,
    )
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(request: Request) -> Any:
    raw_ns = query_list(request, "namespace")
    namespace = namespace_of(raw_ns[-1].split(".") if raw_ns else [])
    keys = query_list(request, "key")
    if not keys:
        raise BadRequest("Key is required")
    refresh = query_list(request, "refresh_ttl")
    refresh_ttl = None if not refresh else refresh[-1].lower() in ("true", "1", "yes")
    value: dict[str, Any] = {"namespace": namespace, "key": keys[-1], "refresh_ttl": refresh_ttl}
    svc, scope = await _svc(request, "get", value)
    item = await svc.get(
        namespace_of(value["namespace"]), value["key"], value["refresh_ttl"], scope.filters
    )
    return JSON(item)


@router.delete("/store/items", status_code=204)
async def delete_item(request: Request) -> Response:
    parsed = await body(request, StoreDelete)
    value: dict[str, Any] = {"namespace": namespace_of(parsed.namespace), "key": parsed.key}
    svc, scope = await _svc(request, "delete", value)
    await svc.delete(namespace_of(value["namespace"]), value["key"], scope.filters)
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(request: Request) -> Any:
    q = await body(request, StoreSearch)
    value: dict[str, Any] = {
        "namespace": namespace_of(q.namespace_prefix, "namespace_prefix"),
        "filter": q.filter,
        "limit": q.limit,
        "offset": q.offset,
        "query": q.query,
        "refresh_ttl": q.refresh_ttl,
    }
    svc, scope = await _svc(request, "search", value)
    items = await svc.search(
        namespace_of(value["namespace"], "namespace_prefix"),
        filter=value["filter"],
        limit=value["limit"],
        offset=value["offset"],
        query=value["query"],
        refresh_ttl=value["refresh_ttl"],
        filters=scope.filters,
    )
    return JSON({"items": items})


@router.post("/store/namespaces")
async def list_namespaces(request: Request) -> Any:
    q = await body(request, StoreNamespaces)
    value: dict[str, Any] = {
        "namespace": _optional(q.prefix or None, "prefix"),
        "suffix": _optional(q.suffix or None, "suffix"),
        "max_depth": q.max_depth,
        "limit": q.limit,
        "offset": q.offset,
    }
    svc, _ = await _svc(request, "list_namespaces", value)
    found = await svc.namespaces(
        _optional(value["namespace"], "prefix"),
        _optional(value["suffix"], "suffix"),
        value["max_depth"],
        value["limit"],
        value["offset"],
    )
    return JSON({"namespaces": found})
