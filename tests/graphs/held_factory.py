"""A graph factory (an async context manager) that can keep a run inside it, to cancel the run
there. With `configurable.hold_file` set, its first build writes `<hold_file>.held` and then
waits until `<hold_file>.go` exists (at most HOLD_LIMIT); later builds go straight on. A cancel
ends the wait at once in Keel; the reference lets the factory return first."""

from __future__ import annotations

import asyncio
import contextlib
import operator
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

HOLD_LIMIT = 100.0  # a test that never lets the build go fails rather than hold the run forever


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


async def step(state: State) -> State:
    return {"log": ["step"]}


def _first_build(hold: str | None) -> bool:
    """Whether this build is the first with `hold` set (it says so in `<hold>.held`)."""
    if not hold or Path(f"{hold}.held").exists():
        return False
    Path(f"{hold}.held").touch()
    return True


def _let_go(hold: str) -> bool:
    return Path(f"{hold}.go").exists()


async def _wait_for_go(hold: str) -> None:
    deadline = time.monotonic() + HOLD_LIMIT
    while not _let_go(hold):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test never created {hold}.go")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def make_graph(config: dict[str, Any]) -> AsyncIterator[Any]:
    hold = (config.get("configurable") or {}).get("hold_file")
    if hold is not None and _first_build(hold):
        await _wait_for_go(str(hold))
    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    yield builder.compile(name="held_factory")
