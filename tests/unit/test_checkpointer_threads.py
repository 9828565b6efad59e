"""SQLite: a sync node's subgraph calls the saver from a worker thread; every statement on
Keel's one connection must still run on the event loop's thread, or it can land inside (or
open a transaction across) a storage transaction of the loop."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph

from keel.storage.sqlite import SqliteStorage


class State(TypedDict):
    items: Annotated[list[str], operator.add]


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(tmp_path / "keel.db")
    await storage.open()
    yield storage
    await storage.close()


def _statement_threads(storage: SqliteStorage) -> set[int]:
    seen: set[int] = set()
    storage.conn.set_trace_callback(lambda _sql: seen.add(threading.get_ident()))
    return seen


def _graph(storage: SqliteStorage) -> Any:
    sub = StateGraph(State)
    sub.add_node("inner", lambda s: {"items": ["inner"]})
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    subgraph = sub.compile()

    def outer(state: State) -> dict[str, Any]:  # sync: LangGraph runs it in a worker thread
        return {"items": subgraph.invoke({"items": []})["items"] + ["outer"]}

    top = StateGraph(State)
    top.add_node("outer", outer)
    top.add_edge(START, "outer")
    top.add_edge("outer", END)
    return top.compile(checkpointer=storage.checkpointer)


async def test_sync_saver_calls_from_a_thread_run_on_the_loop(storage: SqliteStorage) -> None:
    saver = storage.checkpointer
    seen = _statement_threads(storage)
    config: RunnableConfig = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}

    def from_a_thread() -> tuple[Any, int]:
        stored = saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
        saver.put_writes(stored, [("a", 1), ("b", 2)], "task-1")
        found = saver.get_tuple(stored)
        listed = len(list(saver.list(config)))
        saver.delete_thread("t1")
        return found, listed

    found, listed = await asyncio.to_thread(from_a_thread)
    assert found is not None and len(found.pending_writes or []) == 2
    assert found.metadata["thread_id"] == "t1"  # Keel's put override still applies
    assert listed == 1
    assert saver.get_tuple(config) is None
    assert seen == {threading.get_ident()}


async def test_a_sync_node_invoking_a_subgraph_beside_storage_writes(
    storage: SqliteStorage,
) -> None:
    graph = _graph(storage)
    seen = _statement_threads(storage)
    stop = asyncio.Event()

    async def storage_writes() -> int:
        done = 0
        while not stop.is_set():
            async with storage.tx() as tx:
                await tx.run("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
                await tx.run("INSERT INTO probe VALUES (?)", [done])
            done += 1
            await asyncio.sleep(0)
        return done

    writer = asyncio.create_task(storage_writes())
    try:
        results = await asyncio.gather(
            *(
                graph.ainvoke({"items": []}, {"configurable": {"thread_id": f"t{i}"}})
                for i in range(8)
            )
        )
    finally:
        stop.set()
        await writer
    assert all(r["items"] == ["inner", "outer"] for r in results)
    assert seen == {threading.get_ident()}
