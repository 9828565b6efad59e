"""A graph that returns the string values of its run's `config.configurable` (what
`http.configurable_headers` copies from request headers lands there)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    seen: dict[str, Any]


def echo(state: State, config: RunnableConfig) -> State:
    configurable = config.get("configurable") or {}
    seen = {
        k: v for k, v in configurable.items() if isinstance(v, str) and not k.startswith("__")
    }
    return {"seen": seen}


builder = StateGraph(State)
builder.add_node("echo", echo)
builder.add_edge(START, "echo")
graph = builder.compile()
