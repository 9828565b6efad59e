"""Three nodes that each await asyncio.sleep: for cancellation and double-texting tests."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    delay: float
    tag: str


def _node(name: str) -> Callable[[State], Awaitable[State]]:
    async def run(state: State) -> State:
        await asyncio.sleep(float(state.get("delay", 0.2)))
        return {"log": [f"{name}:{state.get('tag', '')}"]}

    return run


builder = StateGraph(State)
for _name in ("step1", "step2", "step3"):
    builder.add_node(_name, _node(_name))
builder.add_edge(START, "step1")
builder.add_edge("step1", "step2")
builder.add_edge("step2", "step3")
builder.add_edge("step3", END)
graph = builder.compile(name="slow")
