"""`KeelStore`: LangGraph's `BaseStore` over Keel's database, with semantic search and TTL.

Every store operation — from `/store` requests and from graphs (`get_store()`, a `store`
argument) — arrives in `abatch`, and every statement it runs is a named query in
`keel/storage/queries/store.py`: the one place tenancy filters will be applied. Operations that
coroutines issue in the same loop tick are batched (LangGraph's `AsyncBatchedBaseStore`); sync
callers (sync graph nodes in worker threads) are handed to the loop.

Semantic search: each process keeps a `VectorIndex` of the store's vectors, brought up to date
before every search from `store_clock` (writes that touch vectors take the next sequence number
while holding the clock row, so they commit in order) and `store_vector_deletes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.base.batch import AsyncBatchedBaseStore
from langgraph.store.base.embed import get_text_at_path

from keel import clock
from keel.errors import InvalidInput
from keel.metrics.recorder import Recorder
from keel.serde import loads
from keel.settings import StoreSettings
from keel.storage.queries.base import Dialect, Row, j
from keel.storage.queries.store import filter_sql
from keel.vectors import Floats, VectorIndex

if TYPE_CHECKING:
    from keel.embeddings import Embedder
    from keel.storage.base import Storage
    from keel.storage.tx import Tx

ItemKey = tuple[str, str]
Namespace = tuple[str, ...]
DELETE_LOG_SECONDS = 3600.0  # vector deletions are logged this long for other processes
SWEEP_BATCH = 1000
OFF = "semantic search is off: store.index is null in the config"


def ns_text(namespace: Sequence[str]) -> str:
    return ".".join(namespace)


def to_search_item(row: Row, score: float | None = None) -> SearchItem:
    value = row["value"]
    return SearchItem(
        namespace=tuple(row["prefix"].split(".")),
        key=row["key"],
        value=loads(value) if isinstance(value, (str, bytes)) else value,
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        score=score,
    )


def to_item(row: Row) -> Item:
    found = to_search_item(row)
    return Item(
        namespace=found.namespace,
        key=found.key,
        value=found.value,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def check_filter(filt: Any, dialect: Dialect) -> None:
    """Raise `InvalidInput` for a filter the store's SQL cannot express."""
    if filt is None:
        return
    if not isinstance(filt, dict):
        raise InvalidInput("filter: must be an object")
    for key in filt:
        if any(c in key for c in "\"'\\") or not key:
            raise InvalidInput(f"filter: unsupported field name {key!r}")
    try:
        filter_sql(dialect, filt)
    except ValueError as exc:
        raise InvalidInput(f"filter: {exc}") from exc


def check_op(op: Op) -> None:
    """LangGraph's namespace rules (ops handed to `batch` directly skip `BaseStore`'s checks),
    plus a key neither database can hold (NUL characters; values: `encode_value`)."""
    try:
        validate_op_namespace(op)
    except InvalidNamespaceError as exc:
        raise InvalidInput(f"namespace: {exc}") from exc
    if isinstance(op, PutOp):
        if not op.namespace or op.namespace[0] == "langgraph":
            raise InvalidInput(f"namespace: {list(op.namespace)!r} is empty or reserved")
        if "\x00" in op.key:
            raise InvalidInput("key: must not contain NUL characters")


def encode_value(value: Mapping[str, Any]) -> str:
    """An item's value as the JSON text stored; refused if it holds a NUL character."""
    text = j(value)
    if "\\u0000" in text:
        raise InvalidInput("value: strings must not contain NUL characters (\\u0000)")
    return text


def matches(ns: tuple[str, ...], cond: MatchCondition) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    part = ns[: len(path)] if cond.match_type == "prefix" else ns[len(ns) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


def select_namespaces(found: Iterable[tuple[str, ...]], op: ListNamespacesOp) -> list[Namespace]:
    """The page of `found` namespaces that `op` asks for (conditions, depth, offset, limit)."""
    conds = op.match_conditions or ()
    kept = [ns for ns in found if all(matches(ns, c) for c in conds)]
    if op.max_depth is not None:
        kept = list({ns[: op.max_depth] for ns in kept})
    return sorted(kept)[op.offset : op.offset + op.limit]


class KeelStore(AsyncBatchedBaseStore):
    supports_ttl = True
    recorder: Recorder = Recorder()  # the process's metrics (keel.metrics), set by the Runtime

    def __init__(
        self, storage: Storage, settings: StoreSettings, embedder: Embedder | None
    ) -> None:
        super().__init__()
        self.storage = storage
        self.settings = settings
        self.embedder = embedder
        self.fields = settings.index.fields if settings.index else ()
        self.ttl_config: TTLConfig = {
            "default_ttl": settings.ttl.default_ttl,
            "refresh_on_read": settings.ttl.refresh_on_read,
            "sweep_interval_minutes": int(settings.ttl.sweep_interval_minutes),
        }
        self.index = VectorIndex(embedder.dims, embedder.coarse_dims) if embedder else None
        self._sync_lock = asyncio.Lock()
        # Each organisation's view of this store, made by `keel.store_orgs.for_org`.
        self.org_views: dict[str | None, BaseStore] = {}

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ batch
    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops` as if one after another: consecutive writes go in one transaction,
        consecutive reads share one connection."""
        ops = list(ops)
        for op in ops:
            check_op(op)
        # Every value is encoded (and checked) before any operation runs.
        encoded = [
            encode_value(op.value) if isinstance(op, PutOp) and op.value is not None else None
            for op in ops
        ]
        results: list[Result] = [None] * len(ops)
        start = 0
        while start < len(ops):
            writing = isinstance(ops[start], PutOp)
            end = start
            while end < len(ops) and isinstance(ops[end], PutOp) == writing:
                end += 1
            if writing:
                puts = [(op, encoded[i]) for i, op in enumerate(ops[start:end], start)]
                await self._write([(op, text) for op, text in puts if isinstance(op, PutOp)])
            else:
                await self._read(ops, start, end, results)
            start = end
        return results

    async def _read(self, ops: list[Op], start: int, end: int, results: list[Result]) -> None:
        queries = await self._embed_queries(ops[start:end])
        now = clock.now()
        refresh: list[ItemKey] = []
        async with self.storage.statements() as tx:
            for i in range(start, end):
                op = ops[i]
                if isinstance(op, GetOp):
                    results[i], keys = await self._get(tx, op, now)
                elif isinstance(op, SearchOp):
                    results[i], keys = await self._search(tx, op, queries, now)
                elif isinstance(op, ListNamespacesOp):
                    results[i], keys = await self._namespaces(tx, op, now), []
                else:
                    raise InvalidInput(f"unknown store operation {type(op).__name__}")
                refresh.extend(keys)
        if refresh:
            async with self.storage.tx() as tx:
                await tx.refresh_store_ttl(sorted(set(refresh)), now)

    # ------------------------------------------------------------------ reads
    async def _embed_queries(self, ops: Sequence[Op]) -> dict[str, Floats]:
        """The search queries' vectors, computed before a connection is taken."""
        texts = sorted({op.query for op in ops if isinstance(op, SearchOp) and op.query})
        if not texts:
            return {}
        if self.embedder is None:
            raise InvalidInput(f"query: {OFF}")
        vectors = await self.embedder.embed(texts)
        return {t: np.asarray(vectors[i], dtype=np.float32) for i, t in enumerate(texts)}

    async def _get(self, tx: Tx, op: GetOp, now: float) -> tuple[Item | None, list[ItemKey]]:
        rows = await tx.get_store_items([(ns_text(op.namespace), op.key)], now)
        if not rows:
            return None, []
        return to_item(rows[0]), _refreshable(rows, op.refresh_ttl)

    async def _search(
        self, tx: Tx, op: SearchOp, queries: dict[str, Floats], now: float
    ) -> tuple[list[SearchItem], list[ItemKey]]:
        prefix = ns_text(op.namespace_prefix)
        started = time.perf_counter() if self.recorder.enabled else 0.0
        try:
            if op.query:
                found = await self._semantic(tx, op, queries[op.query], prefix, now)
            else:
                rows = await tx.search_store_items(prefix, op.filter, op.limit, op.offset, now)
                found = [(row, None) for row in rows]
        except ValueError as exc:
            raise InvalidInput(f"filter: {exc}") from exc
        if started:
            kind = "semantic" if op.query else "filter"
            self.recorder.store_searched(kind, time.perf_counter() - started)
        items = [to_search_item(row, score) for row, score in found]
        return items, _refreshable([row for row, _ in found], op.refresh_ttl)

    async def _semantic(
        self, tx: Tx, op: SearchOp, query: Floats, prefix: str, now: float
    ) -> list[tuple[Row, float | None]]:
        """Best first among live items matching the filter; then, as LangGraph's stores do,
        items without vectors fill a short page."""
        assert self.index is not None
        await self._sync(tx)
        want = op.offset + op.limit
        found: list[tuple[Row, float | None]] = []
        skip, batch = 0, max(2 * want, 32)
        while len(found) < want:
            candidates = self.index.search(query, prefix, batch, skip)
            rows = await tx.filter_store_items([k for k, _ in candidates], op.filter, now)
            by_key = {(r["prefix"], r["key"]): r for r in rows}
            found.extend((by_key[k], s) for k, s in candidates if k in by_key)
            if len(candidates) < batch:
                break
            skip, batch = skip + batch, min(batch * 2, 4096)
        page = found[op.offset : want]
        if len(page) < op.limit:
            rest = await tx.unembedded_store_items(prefix, op.filter, op.limit - len(page), now)
            page.extend((row, None) for row in rest)
        return page

    async def _namespaces(self, tx: Tx, op: ListNamespacesOp, now: float) -> list[tuple[str, ...]]:
        fixed: list[str] = []
        for cond in op.match_conditions or ():
            if cond.match_type == "prefix":
                for label in cond.path:
                    if label == "*":
                        break
                    fixed.append(label)
                break
        found = {tuple(p.split(".")) for p in await tx.store_namespaces(ns_text(fixed), now)}
        return select_namespaces(found, op)

    # ------------------------------------------------------------------ vectors
    async def _sync(self, tx: Tx) -> None:
        """Bring this process's vector index up to the database's `store_clock`."""
        index = self.index
        assert index is not None
        async with self._sync_lock:
            clock_row = await tx.store_clock()
            upto = int(clock_row["seq"])
            if index.loaded and index.seq == upto:
                return
            if not index.loaded or index.seq < int(clock_row["pruned_through"]):
                index.clear()
                added = await tx.store_vectors_between(-1, upto)
            else:
                for d in await tx.store_vector_deletes_between(index.seq, upto):
                    index.remove((d["prefix"], d["key"]), int(d["seq"]))
                added = await tx.store_vectors_between(index.seq, upto)
            index.load(((r["prefix"], r["key"]), r["embedding"], int(r["seq"])) for r in added)
            index.seq, index.loaded = upto, True

    async def _embed(self, puts: Iterable[PutOp]) -> list[tuple[str, str, str, bytes]]:
        """(prefix, key, field, float32 bytes) for every text the puts ask to embed."""
        texts: list[tuple[str, str, str, str]] = []
        for op in puts:
            paths = self._paths(op)
            for path in paths:
                found = get_text_at_path(op.value, path)
                for i, text in enumerate(found):
                    field = path if len(found) == 1 else f"{path}.{i}"
                    texts.append((ns_text(op.namespace), op.key, field, text))
        if not texts:
            return []
        assert self.embedder is not None
        vectors = await self.embedder.embed([t[3] for t in texts])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return [(p, k, f, vectors[i].tobytes()) for i, (p, k, f, _) in enumerate(texts)]

    def _paths(self, op: PutOp) -> Sequence[str]:
        if op.value is None or op.index is False:
            return ()
        if op.index is not None and self.embedder is None:
            raise InvalidInput(f"index: {OFF}")
        return self.fields if op.index is None else op.index

    # ------------------------------------------------------------------ writes
    async def _write(self, puts: list[tuple[PutOp, str | None]]) -> None:
        """Puts with their encoded values (None: a delete)."""
        latest = {(ns_text(op.namespace), op.key): (op, text) for op, text in puts}  # last wins
        vectors = await self._embed(op for op, _ in latest.values())
        now = clock.now()
        stamp = clock.iso(now)
        rows = [
            (p, k, text, stamp, *_expiry(op, self.settings.ttl.default_ttl, now))
            for (p, k), (op, text) in latest.items()
            if text is not None
        ]
        async with self.storage.tx() as tx:
            seq = await tx.tick_store_clock()
            await tx.drop_store_vectors(list(latest), seq, now)
            await tx.delete_store_items([k for k, (_, text) in latest.items() if text is None])
            await tx.put_store_items(rows)
            await tx.put_store_vectors(vectors, seq)

    async def sweep(self, now: float | None = None) -> int:
        """Delete items expired as of `now` (reads already skip them); returns how many."""
        total = 0
        now = clock.now() if now is None else now
        while True:
            async with self.storage.tx() as tx:
                keys = await tx.expired_store_items(now, SWEEP_BATCH)
                if keys:
                    seq = await tx.tick_store_clock()
                    await tx.drop_store_vectors(keys, seq, now)
                    await tx.delete_store_items(keys)
                else:
                    await tx.prune_store_vector_deletes(now - DELETE_LOG_SECONDS)
            total += len(keys)
            if not keys:
                return total


def _expiry(op: PutOp, default_ttl: float | None, now: float) -> tuple[float | None, float | None]:
    ttl: Any = op.ttl
    if ttl is NOT_PROVIDED:
        ttl = default_ttl
    if ttl is None:
        return None, None
    minutes = float(ttl)
    return now + minutes * 60, minutes


def _refreshable(rows: Sequence[Row], refresh: bool) -> list[ItemKey]:
    if not refresh:
        return []
    return [(r["prefix"], r["key"]) for r in rows if r["ttl_minutes"] is not None]
