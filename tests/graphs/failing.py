"""A graph whose second node raises, so runs end with an `error` event and `__error__`."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    value: str
    secret: bool
    kind: str


class SecretError(Exception):
    """Not on the safe list: its message must be hidden from clients."""


class QuotaError(RuntimeError):
    """A subclass of a safe exception type: its message reaches clients."""


def ok(state: State) -> State:
    return {"value": "ok ran"}


def boom(state: State) -> State:
    if state.get("secret"):
        raise SecretError("internal password is hunter2")
    if state.get("kind") == "timeout":
        raise TimeoutError("the graph's own call timed out")
    if state.get("kind") == "subclass":
        raise QuotaError("quota of 3 calls used up")
    if state.get("kind") == "assert":
        raise AssertionError("invariant broken: token abc123")
    raise ValueError(f"boom after {state.get('value')}")


builder = StateGraph(State)
builder.add_node("ok", ok)
builder.add_node("boom", boom)
builder.add_edge(START, "ok")
builder.add_edge("ok", "boom")
builder.add_edge("boom", END)
graph = builder.compile(name="failing")
