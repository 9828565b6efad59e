"""One node writing `n` custom events of `size` bytes each: a thread stream's slow consumer."""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    n: int
    size: int
    written: int


def chatter(state: State) -> State:
    write = get_stream_writer()
    pad = "x" * state.get("size", 10)
    for i in range(state.get("n", 10)):
        write({"i": i, "pad": pad})
    return {"written": state.get("n", 10)}


builder = StateGraph(State)
builder.add_node("chatter", chatter)
builder.add_edge(START, "chatter")
builder.add_edge("chatter", END)
graph = builder.compile(name="chatter")
