"""LangGraph's `RemoteGraph` against the server: stateless and on a thread, sync and async, and as
a node of a local graph (it sends `if_not_exists="create"` even on stateless streams).

`remote` builds RemoteGraphs over the SDK clients of the e2e fixtures, which are closed after
each test (a RemoteGraph given only a url leaves its connections open).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command

from tests.e2e.helpers import Client, SyncClient

Remote = Callable[[str], RemoteGraph]

PIPELINE = ["researched {}", "drafted", "reviewed"]


def _done(topic: str) -> dict[str, Any]:
    steps = [s.format(topic) for s in PIPELINE]
    return {"topic": topic, "steps": steps, "summary": "3 steps done"}


class Pipeline(TypedDict, total=False):
    topic: str
    steps: list[str]
    summary: str


class Approval(TypedDict, total=False):
    request: str
    action: str
    decision: str
    result: str


@pytest.fixture
def remote(client: Client, sync_client: SyncClient) -> Remote:
    return lambda graph: RemoteGraph(graph, client=client, sync_client=sync_client)


def _thread() -> RunnableConfig:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def _local(remote: RemoteGraph, schema: Any, checkpointer: Any = None) -> Any:
    builder = StateGraph(schema)
    builder.add_node("remote", remote)
    builder.add_edge(START, "remote")
    builder.add_edge("remote", END)
    return builder.compile(checkpointer=checkpointer)


def test_stateless_invoke_and_stream(remote: Remote) -> None:
    graph = remote("pipeline")
    assert graph.invoke({"topic": "a"}) == _done("a")
    chunks = list(graph.stream({"topic": "b"}, stream_mode="values"))
    assert chunks[0] == {"topic": "b", "steps": []} and chunks[-1] == _done("b")
    updates = list(graph.stream({"topic": "c"}))  # default: updates
    assert [next(iter(u)) for u in updates] == ["research", "draft", "review"]


def test_thread_state_history_and_update(remote: Remote) -> None:
    graph = remote("pipeline")
    config = _thread()
    tid = config["configurable"]["thread_id"]
    assert graph.invoke({"topic": "t"}, config) == _done("t")  # creates the thread
    state = graph.get_state(config)
    assert state.values == _done("t") and state.next == ()
    assert state.config["configurable"]["thread_id"] == tid
    assert dict(state.metadata or {})["thread_id"] == tid
    history = list(graph.get_state_history(config))
    assert [h.metadata["step"] for h in history if h.metadata] == [3, 2, 1, 0, -1]
    updated = graph.update_state(config, {"topic": "u"})
    assert graph.get_state(updated).values["topic"] == "u"
    older = graph.get_state(history[2].config)
    assert older.values == {"topic": "t", "steps": ["researched t"]}


def test_interrupt_and_resume(remote: Remote) -> None:
    graph = remote("approval")
    config = _thread()
    paused = graph.invoke({"request": "r"}, config)
    (interrupt,) = paused["__interrupt__"]
    assert interrupt["value"]["question"] == "Approve this action?"
    state = graph.get_state(config)
    assert state.next == ("ask_human",) and state.interrupts[0].id == interrupt["id"]
    done = graph.invoke(Command(resume={"type": "approve"}), config)
    assert done["decision"] == "approved" and done["result"] == "done: send e-mail about r"


def test_as_a_node_of_a_local_graph(remote: Remote) -> None:
    local = _local(remote("pipeline"), Pipeline)
    assert local.invoke({"topic": "n"}) == _done("n")
    # With a checkpointer the parent's thread id goes along: the remote thread is created.
    saved = _local(remote("pipeline"), Pipeline, InMemorySaver())
    config = _thread()
    assert saved.invoke({"topic": "s"}, config) == _done("s")
    assert remote("pipeline").get_state(config).values == _done("s")


def test_a_remote_interrupt_pauses_the_local_graph(remote: Remote) -> None:
    local = _local(remote("approval"), Approval, InMemorySaver())
    config = _thread()
    out = local.invoke({"request": "x"}, config)
    (interrupt,) = out["__interrupt__"]
    assert interrupt.value["action"] == "send e-mail about x"
    assert local.get_state(config).next == ("remote",)


async def test_async_invoke_stream_and_node(remote: Remote) -> None:
    graph = remote("pipeline")
    assert await graph.ainvoke({"topic": "a"}) == _done("a")
    chunks = [c async for c in graph.astream({"topic": "b"}, stream_mode="values")]
    assert chunks[-1] == _done("b")
    config = _thread()
    assert await graph.ainvoke({"topic": "t"}, config) == _done("t")
    assert (await graph.aget_state(config)).values == _done("t")
    assert len([h async for h in graph.aget_state_history(config)]) == 5
    assert await _local(graph, Pipeline).ainvoke({"topic": "n"}) == _done("n")
