"""Long-term memory: the store API over the storage's `BaseStore` (namespaces, items, search)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.store.base import NOT_PROVIDED, BaseStore, Item, NotProvided, PutOp, SearchItem

from keel.auth.filters import Filter, matches
from keel.errors import InvalidInput
from keel.store import OFF, KeelStore, check_filter, check_op, encode_value

Namespace = tuple[str, ...]


def namespace_of(labels: Any, what: str = "namespace") -> Namespace:
    """A validated namespace: a list of labels, each a non-empty string free of `.`."""
    if labels is None:
        labels = ()
    if not isinstance(labels, (list, tuple)):
        raise InvalidInput(f"{what}: must be a list of labels, got {type(labels).__name__}")
    ns = tuple(labels)
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


def with_filters(filt: dict[str, Any] | None, filters: Sequence[Filter]) -> dict[str, Any] | None:
    """A search's filter with an auth handler's filters ANDed in."""
    parts = [f for f in (filt, *filters) if f]
    if not parts:
        return None
    return dict(parts[0]) if len(parts) == 1 else {"$and": [dict(p) for p in parts]}


class MemoryService:
    """The `/store` operations, over the store graphs use too. Requests are checked here,
    before they join a batch with other requests' operations.

    `store` is the `KeelStore` or, under built-in auth, one organisation's view of it
    (`keel.store_orgs.for_user`). `filters` (from auth handlers) narrow the items a caller may get,
    delete or find: an item that does not match them is not there for that caller."""

    def __init__(self, store: KeelStore, view: BaseStore | None = None) -> None:
        self.keel = store
        self.store = view or store

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
        if isinstance(index, list) and self.keel.embedder is None:
            raise InvalidInput(f"index: {OFF}")
        await self.store.aput(namespace, key, value, index=index, ttl=ttl)

    async def get(
        self,
        namespace: Namespace,
        key: str,
        refresh_ttl: bool | None = None,
        filters: Sequence[Filter] = (),
    ) -> dict[str, Any] | None:
        item = await self.store.aget(namespace, key, refresh_ttl=refresh_ttl)
        if item is None or not all(matches(item.value, f) for f in filters):
            return None
        return item_view(item)

    async def delete(self, namespace: Namespace, key: str, filters: Sequence[Filter] = ()) -> None:
        if filters and await self.get(namespace, key, False, filters) is None:
            return  # not there for this caller
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
        filters: Sequence[Filter] = (),
    ) -> list[dict[str, Any]]:
        if query and self.keel.embedder is None:
            raise InvalidInput(f"query: {OFF}")
        check_filter(filter, self.keel.storage.dialect)
        items = await self.store.asearch(
            prefix,
            query=query,
            filter=with_filters(filter, filters),
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
