"""Three nodes that each await asyncio.sleep: for cancellation and double-texting tests.

A run whose config carries a gate (tests/support/gate.py) does not finish a step until the test
opens it, so a test can hold the run at a known step as long as it needs; while held, the step
emits a custom event `{"held": step}` now and then (when the run streams "custom").
"""

from __future__ import annotations

import asyncio
import operator
import time
from pathlib import Path
from typing import Annotated, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

GATE_KEY = "keel_test_gate"  # the configurable key of tests/support/gate.py
HELD_EVERY = 0.05  # seconds between two "held" events of a held step
HOLD_LIMIT = 120.0  # a gate never opened fails the step rather than hold the run forever


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    delay: float
    tag: str


async def _hold(name: str, config: RunnableConfig) -> None:
    """Return once the run's gate (if any) lets step `name` finish."""
    gate = (config.get("configurable") or {}).get(GATE_KEY)
    if not gate:
        return
    opened = Path(gate) / name
    write = get_stream_writer()
    deadline = time.monotonic() + HOLD_LIMIT
    while not opened.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test never opened gate {opened}")
        write({"held": name})
        await asyncio.sleep(HELD_EVERY)


async def _step(name: str, state: State, config: RunnableConfig) -> State:
    await asyncio.sleep(float(state.get("delay", 0.2)))
    await _hold(name, config)
    return {"log": [f"{name}:{state.get('tag', '')}"]}


async def step1(state: State, config: RunnableConfig) -> State:
    return await _step("step1", state, config)


async def step2(state: State, config: RunnableConfig) -> State:
    return await _step("step2", state, config)


async def step3(state: State, config: RunnableConfig) -> State:
    return await _step("step3", state, config)


builder = StateGraph(State)
builder.add_node("step1", step1)
builder.add_node("step2", step2)
builder.add_node("step3", step3)
builder.add_edge(START, "step1")
builder.add_edge("step1", "step2")
builder.add_edge("step2", "step3")
builder.add_edge("step3", END)
graph = builder.compile(name="slow")
