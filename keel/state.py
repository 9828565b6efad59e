"""Thread state: read, update, bulk update and history, from the thread's checkpoints."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import EmptyInputError, InvalidUpdateError
from langgraph.types import StateSnapshot, StateUpdate
from langgraph_sdk.runtime import AccessContext

from keel import clock
from keel.auth.scope import EVERYTHING, Scope
from keel.auth.user import User
from keel.errors import BadRequest, Conflict, InvalidInput, NotFound
from keel.execution import build_command, interrupts_view, thread_interrupts
from keel.graphs import Graph, GraphRegistry
from keel.runs import THREAD_CHANNEL
from keel.serde import dumps, jsonable
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.store_orgs import for_user
from keel.streams import StreamHub
from keel.threads import ThreadService, get_thread

EMPTY_STATE: Row = {
    "values": {},
    "next": [],
    "tasks": [],
    "checkpoint": None,
    "metadata": None,
    "created_at": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}
# What LangGraph raises when an update does not fit the graph: values of the wrong shape or type
# (also from the graph's own reducers), a node or subgraph it does not have.
UPDATE_ERRORS = (InvalidUpdateError, EmptyInputError, ValueError, KeyError, TypeError)


def checkpoint_view(config: RunnableConfig | dict[str, Any] | None) -> Row | None:
    """A snapshot's checkpoint as the API shows it: null unless it names a checkpoint."""
    c = (config or {}).get("configurable") or {}
    if not c.get("thread_id") or not c.get("checkpoint_id"):
        return None
    out = {"thread_id": c["thread_id"]}
    if "checkpoint_ns" in c:
        out["checkpoint_ns"] = c["checkpoint_ns"] or ""
    out["checkpoint_id"] = c["checkpoint_id"]
    if "checkpoint_map" in c:
        out["checkpoint_map"] = jsonable(c["checkpoint_map"])
    return out


def _error_text(error: Any) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return repr(error)


def _task(task: Any) -> Row:
    state = task.state
    return {
        "id": task.id,
        "name": task.name,
        "path": jsonable(list(task.path)) if getattr(task, "path", None) else [],
        "error": _error_text(task.error),
        "interrupts": interrupts_view(task.interrupts),
        # A subgraph task read without subgraphs=true: the subgraph's config, as LangGraph has it.
        "checkpoint": jsonable(state.get("configurable")) if isinstance(state, dict) else None,
        "state": snapshot_view(state) if isinstance(state, StateSnapshot) else None,
        "result": jsonable(getattr(task, "result", None)),
    }


def snapshot_view(s: StateSnapshot) -> Row:
    metadata = dict(s.metadata or {})
    if metadata.get("checkpoint_ns") == "":
        metadata.pop("checkpoint_ns")
    checkpoint = checkpoint_view(s.config)
    parent = checkpoint_view(s.parent_config)
    return {
        "values": jsonable(s.values),
        "next": list(s.next),
        "tasks": [_task(t) for t in s.tasks],
        "checkpoint": checkpoint,
        "metadata": jsonable(metadata) if s.metadata is not None else None,
        "created_at": s.created_at,
        "parent_checkpoint": parent,
        "interrupts": interrupts_view(s.interrupts),
        "checkpoint_id": (s.config or {}).get("configurable", {}).get("checkpoint_id"),
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def check_checkpoint_id(value: Any, what: str = "checkpoint_id") -> str:
    """Checkpoint ids are the UUIDs LangGraph makes; anything else cannot name one (422)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"Invalid {what}: '{value}' is not a valid UUID") from None
    return str(value)


def checkpoint_selector(checkpoint: Row | None, thread_id: str) -> Row:
    """The `configurable` naming a thread's checkpoint (the root namespace unless it says
    otherwise; LangGraph echoes it back); `thread_id` is always the path's."""
    conf = {k: v for k, v in (checkpoint or {}).items() if v is not None and k != "thread_id"}
    if conf.get("checkpoint_id") == "":
        del conf["checkpoint_id"]
    if "checkpoint_id" in conf:
        check_checkpoint_id(conf["checkpoint_id"])
    return {"thread_id": thread_id, "checkpoint_ns": "", **conf}


def _before(before: Any, thread_id: str, ns: str) -> Row | None:
    """`before` as a checkpoint id, `{"configurable": {...}}` or a flat checkpoint dict."""
    if isinstance(before, dict):
        conf = before.get("configurable", before)
        before = conf.get("checkpoint_id") if isinstance(conf, dict) else None
    if before is None or before == "":
        return None  # the reference ignores a `before` that names no checkpoint
    if not isinstance(before, str):
        raise InvalidInput("before: expected a checkpoint id or a checkpoint object")
    check_checkpoint_id(before, "before")
    return {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": before}


def superstep_updates(supersteps: list[Row]) -> list[list[StateUpdate]]:
    """`threads.create(supersteps=...)` updates as LangGraph's `StateUpdate`s (a `command`
    replaces the values, as in the reference)."""
    out = []
    for step in supersteps:
        updates = []
        for u in step.get("updates") or []:
            values: Any = build_command(u["command"]) if u.get("command") else u.get("values")
            updates.append(StateUpdate(values, u.get("as_node")))
        out.append(updates)
    return out


class StateService:
    """A thread's state as one caller may see it: threads outside `scope` are not found, and
    graph factories asking for a `ServerRuntime` get `user`."""

    def __init__(
        self,
        storage: Storage,
        graphs: GraphRegistry,
        hub: StreamHub,
        scope: Scope = EVERYTHING,
        user: User | None = None,
    ) -> None:
        self.storage = storage
        self.graphs = graphs
        self.hub = hub
        self.scope = scope
        self.user = user

    async def _thread(self, thread_id: str) -> Row:
        async with self.storage.read() as tx:
            return await get_thread(tx, thread_id, self.scope)

    def graph_id(self, metadata: Row) -> str | None:
        """The thread's graph id (None before its first run); 404 when no longer deployed."""
        graph_id = metadata.get("graph_id")
        if graph_id is None:
            return None
        if str(graph_id) not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found. Expected one of: {self.graphs.ids()}")
        return str(graph_id)

    @contextlib.asynccontextmanager
    async def _graph(
        self, thread: Row, graph_id: str, access: AccessContext
    ) -> AsyncIterator[Graph]:
        """The thread's graph, a factory built with the thread's config (its assistant's)."""
        config = copy.deepcopy(thread.get("config") or {})
        config["configurable"] = {
            **(config.get("configurable") or {}),
            "thread_id": thread["thread_id"],
            "graph_id": graph_id,
        }
        storage = self.storage
        # With organisations on, a factory reading the store at build time sees its org's only.
        store = for_user(storage.store, self.user, self.scope.bound)
        async with self.graphs.get(graph_id).build(
            config, storage.checkpointer, store, access, user=self.user
        ) as graph:
            yield graph

    async def _require(self, conf: Row) -> None:
        """404 unless the checkpoint `conf` names exists (only checked when it names one)."""
        if conf.get("checkpoint_id") is None:
            return
        config: Any = {"configurable": conf}
        if await self.storage.checkpointer.aget_tuple(config) is None:
            raise NotFound(f"Checkpoint '{conf['checkpoint_id']}' not found")

    async def get(
        self, thread_id: str, checkpoint: Row | None = None, subgraphs: bool = False
    ) -> Row:
        thread = await self._thread(thread_id)
        conf = checkpoint_selector(checkpoint, thread_id)
        graph_id = self.graph_id(thread["metadata"])
        if graph_id is None:
            if conf.get("checkpoint_id"):
                raise NotFound(f"Checkpoint '{conf['checkpoint_id']}' not found")
            return dict(EMPTY_STATE)
        await self._require(conf)
        async with self._graph(thread, graph_id, "threads.read") as graph:
            try:
                snap = await graph.aget_state({"configurable": conf}, subgraphs=subgraphs)
            except ValueError as exc:  # e.g. "Subgraph x not found"
                raise BadRequest(str(exc)) from exc
        if snap.created_at is None:  # no checkpoint yet: LangGraph echoes the config back
            return dict(EMPTY_STATE)
        return snapshot_view(snap)

    async def history(self, thread_id: str, q: Row) -> list[Row]:
        thread = await self._thread(thread_id)
        conf = checkpoint_selector(q.get("checkpoint"), thread_id)
        before = _before(q.get("before"), thread_id, conf["checkpoint_ns"])
        graph_id = self.graph_id(thread["metadata"])
        if graph_id is None:
            return []
        await self._require(conf)
        if before is not None:
            await self._require(before)
        async with self._graph(thread, graph_id, "threads.read") as graph:
            return [
                snapshot_view(s)
                async for s in graph.aget_state_history(
                    {"configurable": conf},
                    filter=q.get("metadata") or None,
                    before={"configurable": before} if before else None,
                    limit=q.get("limit", 10),
                )
            ]

    async def _updatable(self, thread_id: str) -> tuple[Row, str]:
        thread = await self._thread(thread_id)
        async with self.storage.read() as tx:
            if await tx.active_runs(thread_id):
                raise Conflict("Thread is busy: a run is pending or running")
        graph_id = self.graph_id(thread["metadata"])
        if graph_id is None:
            raise BadRequest(
                f"Thread '{thread_id}' has no graph yet: run it once first, or create it with "
                "metadata.graph_id"
            )
        return thread, graph_id

    async def update(self, thread_id: str, data: Row) -> Row:
        thread, graph_id = await self._updatable(thread_id)
        checkpoint = dict(data.get("checkpoint") or {})
        if data.get("checkpoint_id"):
            checkpoint["checkpoint_id"] = data["checkpoint_id"]
        conf = checkpoint_selector(checkpoint, thread_id)
        await self._require(conf)
        update: Any = {"configurable": {**conf, "graph_id": graph_id}}  # metadata has it
        async with self._graph(thread, graph_id, "threads.update") as graph:
            try:
                new_config = await graph.aupdate_state(
                    update, data.get("values"), as_node=data.get("as_node")
                )
            except UPDATE_ERRORS as exc:
                raise BadRequest(str(exc)) from exc
            snap = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        await self._record(thread_id, snap)
        cp = jsonable(new_config["configurable"])
        return {"checkpoint": cp, "configurable": cp, "checkpoint_id": cp["checkpoint_id"]}

    async def bulk_update(self, thread_id: str, supersteps: list[Row]) -> None:
        """Apply supersteps of updates, each one checkpoint, as LangGraph's bulk update does."""
        thread, graph_id = await self._updatable(thread_id)
        config: Any = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "graph_id": graph_id}
        }
        async with self._graph(thread, graph_id, "threads.update") as graph:
            try:
                await graph.abulk_update_state(config, superstep_updates(supersteps))
            except UPDATE_ERRORS as exc:
                raise BadRequest(str(exc)) from exc
            snap = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        await self._record(thread_id, snap)

    async def create_thread(self, threads: ThreadService, data: Row, supersteps: list[Row]) -> Row:
        """A new thread whose state is built by `supersteps` (copying a thread from elsewhere).

        The graph is `metadata.graph_id` (the SDKs' `graph_id`). All or nothing: when an update
        fails the new thread is deleted again. An existing thread (`if_exists=do_nothing`) is
        returned untouched.
        """
        if self.graph_id(data.get("metadata") or {}) is None:
            raise BadRequest("supersteps: the thread needs metadata.graph_id (the SDK's graph_id)")
        thread, created = await threads.create_new(data)
        if not created:
            return thread
        try:
            await self.bulk_update(thread["thread_id"], supersteps)
        except BaseException:
            async with self.storage.tx() as tx:
                await tx.delete_thread(thread["thread_id"])
            raise
        return await threads.get(thread["thread_id"])

    async def _record(self, thread_id: str, snap: StateSnapshot) -> None:
        now = clock.iso()
        event_id = f"state.{now}"
        data = dumps({"state": snapshot_view(snap), "thread_id": thread_id})
        async with self.storage.tx() as tx:
            if await tx.active_runs(thread_id):
                return
            await tx.set_thread_state(
                thread_id,
                status="interrupted" if snap.next else "idle",
                values=jsonable(snap.values),
                interrupts=thread_interrupts(snap),
                error=None,
                now=now,
            )
            if self.storage.shared:  # for thread streams in other processes
                await tx.insert_thread_event(thread_id, event_id, "state_update", data, now)
                await tx.notify(THREAD_CHANNEL, f"{thread_id} {event_id}")
        self.hub.thread_event(thread_id, event_id, "state_update", data)
