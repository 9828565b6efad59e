"""Assistants: versioned configurations of a graph, including one system assistant per graph."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from keel import clock
from keel.errors import BadRequest, Conflict, InvalidInput, NotFound
from keel.graphs import GraphRegistry
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

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


class AssistantService:
    def __init__(self, storage: Storage, graphs: GraphRegistry) -> None:
        self.storage = storage
        self.graphs = graphs

    def _check_graph(self, graph_id: str) -> None:
        if graph_id not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found")

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
        }
        async with self.storage.tx() as tx:
            existing = await tx.get_assistant(record["assistant_id"])
            if existing is not None:
                if data.get("if_exists") == "do_nothing":
                    return view(existing)
                raise Conflict(f"Assistant '{record['assistant_id']}' already exists")
            await tx.insert_assistant(record)
        return view(record)

    async def get(self, assistant_id: str) -> Row:
        async with self.storage.read() as tx:
            return view(await self._get(tx, assistant_id))

    async def _get(self, tx: Tx, assistant_id: str) -> Row:
        a = await tx.get_assistant(assistant_id)
        if a is None or a["graph_id"] not in self.graphs:
            raise NotFound(f"Assistant '{assistant_id}' not found")
        return a

    async def patch(self, assistant_id: str, data: Row) -> Row:
        if data.get("graph_id") is not None:
            self._check_graph(data["graph_id"])
        data = synced(data)
        async with self.storage.tx() as tx:
            a = await self._get(tx, assistant_id)
            a = dict(a)
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

    async def delete(self, assistant_id: str, delete_threads: bool, runs: Any) -> None:
        async with self.storage.tx() as tx:
            await self._get(tx, assistant_id)
            active = [
                r
                for r in await tx.runs_by_status(("pending", "running"))
                if r["assistant_id"] == assistant_id
            ]
            await tx.delete_assistant(assistant_id)
            if delete_threads:
                owned = {"assistant_id": assistant_id}
                where, params = self.storage.dialect.containment("metadata", owned)
                for t in await tx.search_threads(where, params, "created_at", 1 << 30, 0):
                    await tx.delete_thread(t["thread_id"])
        if active:
            await runs.cancel(None, [r["run_id"] for r in active], None, "interrupt")

    def _where(self, metadata: Row | None, graph_id: str | None, name: str | None) -> Any:
        clauses, params = ["1=1"], []
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
        clauses, params = ["assistant_id=?"], [assistant_id]
        if q.get("metadata"):
            sql, p = self.storage.dialect.containment("metadata", q["metadata"])
            clauses.append(sql)
            params.extend(p)
        async with self.storage.read() as tx:
            rows = await tx.list_assistant_versions(
                " AND ".join(clauses), params, q.get("limit", 10), q.get("offset", 0)
            )
        if not rows:
            raise NotFound(f"Assistant '{assistant_id}' not found")
        return [version_view(v) for v in rows]

    async def set_latest(self, assistant_id: str, version: int) -> Row:
        async with self.storage.tx() as tx:
            a = dict(await self._get(tx, assistant_id))
            v = await tx.get_assistant_version(assistant_id, version)
            if v is None:
                raise NotFound(f"Assistant '{assistant_id}' has no version {version}")
            for key in ("graph_id", "config", "context", "metadata", "name", "description"):
                a[key] = v[key]
            a["version"] = version
            a["updated_at"] = clock.iso()
            await tx.update_assistant(a)
        return view(a)
