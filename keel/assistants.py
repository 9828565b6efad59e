"""Assistants: versioned configurations of a graph, including one system assistant per graph."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from keel import clock
from keel.auth.filters import filter_sql
from keel.auth.scope import EVERYTHING, Scope
from keel.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound
from keel.graphs import GraphRegistry
from keel.storage.base import Storage
from keel.storage.tx import Dialect, Row, Tx

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}


def view(a: Row) -> Row:
    return {
        "assistant_id": a["assistant_id"],
        "graph_id": a["graph_id"],
        "config": a["config"],
        "context": a["context"],
        "created_at": a["created_at"],
        "updated_at": a["updated_at"],
        "metadata": a["metadata"],
        "version": a["version"],
        "name": a["name"],
        "description": a["description"],
    }


def version_view(v: Row) -> Row:
    return {
        "assistant_id": v["assistant_id"],
        "graph_id": v["graph_id"],
        "config": v["config"],
        "context": v["context"],
        "created_at": v["created_at"],
        "metadata": v["metadata"],
        "version": v["version"],
        "name": v["name"],
        "description": v["description"],
    }


def _env_config(graph_id: str) -> dict[str, Any]:
    raw = os.environ.get("LANGGRAPH_CONFIG")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    value = data.get(graph_id) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


async def ensure_system_assistants(storage: Storage, graphs: GraphRegistry) -> None:
    """Create the missing system assistant of every registered graph (uuid5 ids, version 1).
    Processes starting together may race to create one: the loser looks again."""
    for _ in range(5):
        try:
            await _insert_system_assistants(storage, graphs)
            return
        except Conflict:
            continue
    await _insert_system_assistants(storage, graphs)


async def _insert_system_assistants(storage: Storage, graphs: GraphRegistry) -> None:
    now = clock.iso()
    async with storage.tx() as tx:
        for graph in graphs:
            existing = await tx.get_assistant(graph.assistant_id)
            if existing is not None:
                continue
            await tx.insert_assistant(
                {
                    "assistant_id": graph.assistant_id,
                    "graph_id": graph.graph_id,
                    "config": _env_config(graph.graph_id),
                    "context": {},
                    "metadata": {"created_by": "system"},
                    "name": graph.default_name(),
                    "description": graph.spec.description,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )


def synced(data: Row) -> Row:
    """An assistant's config and context as the reference keeps them: given one of
    `config.configurable` and `context`, the other mirrors it; both at once is a 400."""
    config, context = data.get("config"), data.get("context")
    configurable = (config or {}).get("configurable")
    if configurable and context:
        raise BadRequest("Cannot specify both configurable and context. Prefer context.")
    if configurable:
        context = dict(configurable)
    elif context:
        config = {**(config or {}), "configurable": dict(context)}
    return {**data, "config": config, "context": context}


def scope_sql(scope: Scope, graphs: GraphRegistry, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL for the assistants in `scope`. Where rows without an organisation are shared
    (reads under built-in auth) only the system assistants are: an assistant made before
    organisations were on, or by a user without one, is not every organisation's."""
    if not (scope.bound and scope.shared):
        return scope.where(dialect)
    system = sorted(g.assistant_id for g in graphs)
    own, params = ("org IS NULL", []) if scope.org is None else ("org = ?", [scope.org])
    if system:
        own = f"({own} OR (org IS NULL AND assistant_id IN ({','.join('?' * len(system))})))"
        params.extend(system)
    filters, more = Scope(filters=scope.filters).where(dialect)
    return f"{own} AND {filters}", [*params, *more]


# Asked per thread when an assistant is deleted with its threads: the scope in which the caller
# may delete that thread, or None when they may not (the thread is then left alone).
ThreadDeleteScope = Callable[[str], Awaitable[Scope | None]]


class AssistantService:
    """Assistants as one caller may see them: every read and write is limited to `scope`.

    System assistants (one per graph, org NULL) are shared: under built-in auth every
    organisation reads them, and none may change or delete them (403)."""

    def __init__(self, storage: Storage, graphs: GraphRegistry, scope: Scope = EVERYTHING) -> None:
        self.storage = storage
        self.graphs = graphs
        self.scope = scope

    def _check_graph(self, graph_id: str) -> None:
        if graph_id not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found")

    def check_graph(self, graph_id: str) -> None:
        self._check_graph(graph_id)

    async def create(self, data: Row) -> Row:
        self._check_graph(data["graph_id"])
        data = synced(data)
        now = clock.iso()
        record = {
            "assistant_id": data.get("assistant_id") or str(uuid.uuid4()),
            "graph_id": data["graph_id"],
            "config": data.get("config") or {},
            "context": data.get("context") or {},
            "metadata": data.get("metadata") or {},
            "name": data.get("name") or "Untitled",
            "description": data.get("description"),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "org": self.scope.org,
        }
        async with self.storage.tx() as tx:
            existing = await tx.get_assistant(record["assistant_id"])
            if existing is not None:
                visible = await self._scoped(tx, record["assistant_id"])
                if visible is not None and data.get("if_exists") == "do_nothing":
                    return view(visible)
                raise Conflict(f"Assistant '{record['assistant_id']}' already exists")
            await tx.insert_assistant(record)
        return view(record)

    async def get(self, assistant_id: str) -> Row:
        async with self.storage.read() as tx:
            return view(await self._get(tx, assistant_id))

    async def _scoped(self, tx: Tx, assistant_id: str) -> Row | None:
        """The assistant if it exists in scope (and its graph is still served)."""
        if self.scope.unrestricted:
            a = await tx.get_assistant(assistant_id)
        else:
            where = scope_sql(self.scope, self.graphs, tx.dialect)
            a = await tx.get_assistant_in(assistant_id, *where)
        if a is None or a["graph_id"] not in self.graphs:
            return None
        return a

    async def _get(self, tx: Tx, assistant_id: str) -> Row:
        a = await self._scoped(tx, assistant_id)
        if a is None:
            raise NotFound(f"Assistant '{assistant_id}' not found")
        return a

    async def _writable(self, tx: Tx, assistant_id: str) -> Row:
        """The assistant, for a change: under built-in auth a system assistant is read-only."""
        if self.scope.bound and assistant_id in {g.assistant_id for g in self.graphs}:
            raise Forbidden(f"Assistant '{assistant_id}' is a system assistant: read-only")
        return await self._get(tx, assistant_id)

    async def patch(self, assistant_id: str, data: Row) -> Row:
        if data.get("graph_id") is not None:
            self._check_graph(data["graph_id"])
        data = synced(data)
        async with self.storage.tx() as tx:
            a = dict(await self._writable(tx, assistant_id))
            for key in ("graph_id", "config", "context", "name", "description"):
                if data.get(key) is not None:
                    a[key] = data[key]
            if data.get("metadata") is not None:
                a["metadata"] = {**a["metadata"], **data["metadata"]}
            a["version"] = await tx.max_assistant_version(assistant_id) + 1
            a["updated_at"] = clock.iso()
            await tx.update_assistant(a)
            await tx.insert_assistant_version(a)
        return view(a)

    async def delete(
        self,
        assistant_id: str,
        delete_threads: bool,
        runs: Any,
        thread_scope: ThreadDeleteScope | None = None,
    ) -> None:
        """Delete the assistant (its versions and crons); with `delete_threads`, also the
        threads it ran on, those `thread_scope` (auth on) lets the caller delete."""
        allowed = {}
        if delete_threads:
            allowed = await self._deletable_threads(assistant_id, thread_scope)
        async with self.storage.tx() as tx:
            await self._writable(tx, assistant_id)
            active = [
                r
                for r in await tx.runs_by_status(("pending", "running"))
                if r["assistant_id"] == assistant_id
            ]
            await tx.delete_assistant(assistant_id)
            for thread_id in await _threads_of(tx, assistant_id) if delete_threads else []:
                scope = EVERYTHING if thread_scope is None else allowed.get(thread_id)
                if scope is not None and await scope.covers(tx, "threads", thread_id):
                    await tx.delete_thread(thread_id)
        if active:
            await runs.cancel(None, [r["run_id"] for r in active], None, "interrupt")

    async def _deletable_threads(
        self, assistant_id: str, thread_scope: ThreadDeleteScope | None
    ) -> dict[str, Scope]:
        """The scopes in which the caller may delete each thread the assistant ran on (asked
        before the deletion's transaction: handlers may take their time)."""
        if thread_scope is None:
            return {}
        async with self.storage.read() as tx:
            await self._writable(tx, assistant_id)
            candidates = await _threads_of(tx, assistant_id)
        allowed: dict[str, Scope] = {}
        for thread_id in candidates:
            scope = await thread_scope(thread_id)
            if scope is not None:
                allowed[thread_id] = scope
        return allowed

    def _where(self, metadata: Row | None, graph_id: str | None, name: str | None) -> Any:
        scoped, params = scope_sql(self.scope, self.graphs, self.storage.dialect)
        clauses = [scoped]
        if metadata:
            sql, p = self.storage.dialect.containment("metadata", metadata)
            clauses.append(sql)
            params.extend(p)
        if graph_id is not None:
            self._check_graph(graph_id)
            clauses.append("graph_id=?")
            params.append(graph_id)
        if name:
            clauses.append(self.storage.dialect.contains_text("name"))
            params.append(name)
        return " AND ".join(clauses), params

    async def search(self, q: Row) -> tuple[list[Row], bool]:
        where, params = self._where(q.get("metadata"), q.get("graph_id"), q.get("name"))
        sort_by = q.get("sort_by") or "created_at"
        if sort_by not in SORTABLE:
            raise InvalidInput(f"Invalid sort_by: {sort_by}")
        order = f"{sort_by} {(q.get('sort_order') or 'desc').upper()}, assistant_id"
        limit, offset = q.get("limit", 10), q.get("offset", 0)
        async with self.storage.read() as tx:
            rows = await tx.search_assistants(where, params, order, limit + 1, offset)
        rows = [r for r in rows if r["graph_id"] in self.graphs]
        return [view(r) for r in rows[:limit]], len(rows) > limit

    async def count(self, q: Row) -> int:
        where, params = self._where(q.get("metadata"), q.get("graph_id"), q.get("name"))
        async with self.storage.read() as tx:
            return await tx.count("assistants", where, params)

    async def versions(self, assistant_id: str, q: Row) -> list[Row]:
        """The assistant's versions, newest first; as the reference, the caller's filters apply
        to each version's metadata too."""
        clauses, params = ["assistant_id=?"], [assistant_id]
        metadata = [q["metadata"]] if q.get("metadata") else []
        for part in metadata:
            sql, p = self.storage.dialect.containment("metadata", part)
            clauses.append(sql)
            params.extend(p)
        for filt in self.scope.filters:
            sql, p = filter_sql(self.storage.dialect, "metadata", filt)
            clauses.append(sql)
            params.extend(p)
        async with self.storage.read() as tx:
            await self._get(tx, assistant_id)
            rows = await tx.list_assistant_versions(
                " AND ".join(clauses), params, q.get("limit", 10), q.get("offset", 0)
            )
        if not rows:
            raise NotFound(f"Assistant '{assistant_id}' not found")
        return [version_view(v) for v in rows]

    async def set_latest(self, assistant_id: str, version: int) -> Row:
        async with self.storage.tx() as tx:
            a = dict(await self._writable(tx, assistant_id))
            v = await tx.get_assistant_version(assistant_id, version)
            if v is None:
                raise NotFound(f"Assistant '{assistant_id}' has no version {version}")
            for key in ("graph_id", "config", "context", "metadata", "name", "description"):
                a[key] = v[key]
            a["version"] = version
            a["updated_at"] = clock.iso()
            await tx.update_assistant(a)
        return view(a)


async def _threads_of(tx: Tx, assistant_id: str) -> list[str]:
    """Threads an assistant ran on (their metadata names it)."""
    where, params = tx.dialect.containment("metadata", {"assistant_id": assistant_id})
    rows = await tx.search_threads(where, params, "created_at", 1 << 30, 0)
    return [t["thread_id"] for t in rows]
