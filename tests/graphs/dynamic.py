"""A graph factory whose node names come from the config (`configurable.node`, default `step`).

State reads and updates must build it with the thread's config: an assistant configured with
`{"configurable": {"node": "assistant"}}` makes a graph whose only node is `assistant`.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    visits: list[str]


def make_graph(config: RunnableConfig) -> CompiledStateGraph[Any, Any, Any, Any]:
    name = str((config.get("configurable") or {}).get("node") or "step")

    def visit(state: State) -> State:
        return {"visits": [*state.get("visits", []), name]}

    builder = StateGraph(State)
    builder.add_node(name, visit)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(name="dynamic")
