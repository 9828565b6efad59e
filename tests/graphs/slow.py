"""Three nodes that each await asyncio.sleep: for cancellation and double-texting tests."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    delay: float
    tag: str


async def _step(name: str, state: State) -> State:
    await asyncio.sleep(float(state.get("delay", 0.2)))
    return {"log": [f"{name}:{state.get('tag', '')}"]}


async def step1(state: State) -> State:
    return await _step("step1", state)


async def step2(state: State) -> State:
    return await _step("step2", state)


async def step3(state: State) -> State:
    return await _step("step3", state)


builder = StateGraph(State)
builder.add_node("step1", step1)
builder.add_node("step2", step2)
builder.add_node("step3", step3)
builder.add_edge(START, "step1")
builder.add_edge("step1", "step2")
builder.add_edge("step2", "step3")
builder.add_edge("step3", END)
graph = builder.compile(name="slow")
