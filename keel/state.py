"""Thread state: read, update and history, from the thread's checkpoints."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from langgraph_sdk.runtime import AccessContext

from keel import clock
from keel.errors import BadRequest, Conflict, InvalidInput, NotFound
from keel.execution import interrupts_view, thread_interrupts
from keel.graphs import GraphRegistry
from keel.runs import THREAD_CHANNEL
from keel.serde import dumps, jsonable
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import StreamHub
from keel.threads import get_thread

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


def checkpoint_of(config: RunnableConfig | dict[str, Any] | None) -> Row | None:
    if not config:
        return None
    c = config.get("configurable", {})
    out = {
        "thread_id": c.get("thread_id"),
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
    }
    if c.get("checkpoint_map"):
        out["checkpoint_map"] = c["checkpoint_map"]
    return out


def _task(task: Any) -> Row:
    state = task.state
    return {
        "id": task.id,
        "name": task.name,
        "path": list(task.path) if getattr(task, "path", None) else [],
        "error": None if task.error is None else repr(task.error),
        "interrupts": interrupts_view(task.interrupts),
        "checkpoint": checkpoint_of(state) if isinstance(state, dict) else None,
        "state": snapshot_view(state) if isinstance(state, StateSnapshot) else None,
        "result": jsonable(getattr(task, "result", None)),
    }


def snapshot_view(s: StateSnapshot) -> Row:
    metadata = dict(s.metadata or {})
    metadata.pop("checkpoint_ns", None)
    checkpoint = checkpoint_of(s.config)
    parent = checkpoint_of(s.parent_config)
    return {
        "values": jsonable(s.values),
        "next": list(s.next),
        "tasks": [_task(t) for t in s.tasks],
        "checkpoint": checkpoint,
        "metadata": jsonable(metadata) if s.metadata is not None else None,
        "created_at": s.created_at,
        "parent_checkpoint": parent,
        "interrupts": interrupts_view(s.interrupts),
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def _before(before: Any, thread_id: str) -> RunnableConfig | None:
    if before is None:
        return None
    if isinstance(before, str):
        return {"configurable": {"thread_id": thread_id, "checkpoint_id": before}}
    if isinstance(before, dict):
        conf = before.get("configurable", before)
        if isinstance(conf, dict) and conf.get("checkpoint_id"):
            return {"configurable": {"thread_id": thread_id, **conf}}
    raise InvalidInput("before: expected a checkpoint id or a checkpoint object")


class StateService:
    def __init__(self, storage: Storage, graphs: GraphRegistry, hub: StreamHub) -> None:
        self.storage = storage
        self.graphs = graphs
        self.hub = hub

    async def _thread(self, thread_id: str) -> Row:
        async with self.storage.read() as tx:
            return await get_thread(tx, thread_id)

    def _graph(self, thread: Row, access: AccessContext = "threads.read") -> Any:
        graph_id = thread["metadata"].get("graph_id")
        if graph_id is None or graph_id not in self.graphs:
            return None
        config = {"configurable": {"thread_id": thread["thread_id"], "graph_id": graph_id}}
        storage = self.storage
        return self.graphs.get(graph_id).build(
            config, storage.checkpointer, storage.store, access
        )

    async def get(
        self, thread_id: str, checkpoint: Row | None = None, subgraphs: bool = False
    ) -> Row:
        thread = await self._thread(thread_id)
        ctx = self._graph(thread)
        if ctx is None:
            if checkpoint:
                raise NotFound("Checkpoint not found")
            return dict(EMPTY_STATE)
        config = {"configurable": {"thread_id": thread_id, **(checkpoint or {})}}
        async with ctx as graph:
            snap = await graph.aget_state(config, subgraphs=subgraphs)
        if checkpoint and snap.created_at is None:  # LangGraph echoes the config back
            raise NotFound(f"Checkpoint '{checkpoint.get('checkpoint_id')}' not found")
        return snapshot_view(snap)

    async def history(self, thread_id: str, q: Row) -> list[Row]:
        thread = await self._thread(thread_id)
        ctx = self._graph(thread)
        if ctx is None:
            return []
        config = {"configurable": {"thread_id": thread_id, **(q.get("checkpoint") or {})}}
        async with ctx as graph:
            return [
                snapshot_view(s)
                async for s in graph.aget_state_history(
                    config,
                    filter=q.get("metadata") or None,
                    before=_before(q.get("before"), thread_id),
                    limit=q.get("limit", 10),
                )
            ]

    async def update(self, thread_id: str, data: Row) -> Row:
        thread = await self._thread(thread_id)
        async with self.storage.read() as tx:
            if await tx.active_runs(thread_id):
                raise Conflict("Thread is busy: a run is pending or running")
        ctx = self._graph(thread, "threads.update")
        if ctx is None:
            raise BadRequest(f"Thread '{thread_id}' has no graph yet: run it once first")
        checkpoint = dict(data.get("checkpoint") or {})
        if data.get("checkpoint_id"):
            checkpoint["checkpoint_id"] = data["checkpoint_id"]
        checkpoint.pop("thread_id", None)
        # LangGraph needs checkpoint_ns next to a checkpoint_id; clients often omit the root "".
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", **checkpoint}}
        async with ctx as graph:
            try:
                new_config = await graph.aupdate_state(
                    config, data.get("values"), as_node=data.get("as_node")
                )
            except (ValueError, KeyError) as exc:
                raise BadRequest(str(exc)) from exc
            snap = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        await self._record(thread_id, snap)
        cp = checkpoint_of(new_config)
        return {"checkpoint": cp, "configurable": cp, "checkpoint_id": cp and cp["checkpoint_id"]}

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
