"""A graph whose one node writes `count` custom events of `size` padding characters each with
`get_stream_writer()` (tests/e2e/test_thread_stream_ws.py and test_stream_backpressure.py:
slow clients)."""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    count: int
    size: int
    emitted: int


def flood(state: State) -> State:
    write = get_stream_writer()
    pad = "x" * state.get("size", 0)
    count = state.get("count", 0)
    for i in range(count):
        write({"i": i, "pad": pad})
    return {"emitted": count}


builder = StateGraph(State)
builder.add_node("flood", flood)
builder.add_edge(START, "flood")
graph = builder.compile()
