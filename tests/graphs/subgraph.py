"""A parent graph whose middle node is a compiled subgraph (namespaced streaming, subgraph state).

`items` has no reducer, so the subgraph's final `items` replaces the parent's when it returns.
With `pause: true` the subgraph's second node interrupts and waits for a resume value.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    items: list[str]
    pause: bool


def sub_a(state: State) -> State:
    get_stream_writer()({"inside": "sub_a"})
    return {"items": [*state.get("items", []), "sub_a"]}


def sub_b(state: State) -> State:
    entry = "sub_b"
    if state.get("pause"):
        entry = f"sub_b:{interrupt({'question': 'continue the subgraph?'})}"
    return {"items": [*state.get("items", []), entry]}


_child = StateGraph(State)
_child.add_node("sub_a", sub_a)
_child.add_node("sub_b", sub_b)
_child.add_edge(START, "sub_a")
_child.add_edge("sub_a", "sub_b")
_child.add_edge("sub_b", END)
child = _child.compile(name="child")


def prepare(state: State) -> State:
    return {"items": [*state.get("items", []), "prepare"]}


def finish(state: State) -> State:
    return {"items": [*state.get("items", []), "finish"]}


builder = StateGraph(State)
builder.add_node("prepare", prepare)
builder.add_node("child", child)
builder.add_node("finish", finish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "child")
builder.add_edge("child", "finish")
builder.add_edge("finish", END)
graph = builder.compile(name="subgraph")
