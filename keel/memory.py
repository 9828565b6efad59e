"""Long-term memory: the store API over the storage's `BaseStore` (namespaces, items, search)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.store.base import NOT_PROVIDED, Item, NotProvided, PutOp, SearchItem

from keel.errors import InvalidInput
from keel.store import OFF, KeelStore, check_filter, check_op, encode_value

Namespace = tuple[str, ...]


def namespace_of(labels: list[str] | tuple[str, ...] | None, what: str = "namespace") -> Namespace:
    """A validated namespace: every label non-empty and free of `.`."""
    ns = tuple(labels or ())
    for label in ns:
        if not isinstance(label, str) or not label:
            raise InvalidInput(f"{what}: labels must be non-empty strings, got {list(ns)!r}")
        if "." in label:
            raise InvalidInput(f"{what}: labels must not contain '.', got {label!r}")
        if "\x00" in label:
            raise InvalidInput(f"{what}: labels must not contain NUL characters")
    return ns


def _utc(moment: datetime) -> str:
    """SQLite hands back naive UTC timestamps; the API shows an offset (§1.1)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def item_view(item: Item | SearchItem) -> dict[str, Any]:
    out: dict[str, Any] = item.dict()
    out["namespace"] = list(item.namespace)
    out["created_at"] = _utc(item.created_at)
    out["updated_at"] = _utc(item.updated_at)
    return out


class MemoryService:
    """The `/store` operations, over the store graphs use too. Requests are checked here,
    before they join a batch with other requests' operations."""

    def __init__(self, store: KeelStore) -> None:
        self.store = store

    async def put(
        self,
        namespace: Namespace,
        key: str,
        value: dict[str, Any],
        index: Literal[False] | list[str] | None = None,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        check_op(PutOp(namespace, key, value, index))
        encode_value(value)  # refused here, before it joins other requests' batch
        if isinstance(index, list) and self.store.embedder is None:
            raise InvalidInput(f"index: {OFF}")
        await self.store.aput(namespace, key, value, index=index, ttl=ttl)

    async def get(
        self, namespace: Namespace, key: str, refresh_ttl: bool | None = None
    ) -> dict[str, Any] | None:
        item = await self.store.aget(namespace, key, refresh_ttl=refresh_ttl)
        return None if item is None else item_view(item)

    async def delete(self, namespace: Namespace, key: str) -> None:
        await self.store.adelete(namespace, key)

    async def search(
        self,
        prefix: Namespace,
        *,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
        refresh_ttl: bool | None = None,
    ) -> list[dict[str, Any]]:
        if query and self.store.embedder is None:
            raise InvalidInput(f"query: {OFF}")
        check_filter(filter, self.store.storage.dialect)
        items = await self.store.asearch(
            prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )
        return [item_view(i) for i in items]

    async def namespaces(
        self,
        prefix: Namespace | None,
        suffix: Namespace | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[list[str]]:
        found = await self.store.alist_namespaces(
            prefix=prefix or None,
            suffix=suffix or None,
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )
        return [list(ns) for ns in found]
