"""A graph factory (an async context manager) that can keep a run inside it, to cancel the run
there. With `configurable.hold_file` set, its first build writes `<hold_file>.held` and then
sleeps 60 s (a cancel ends that at once, in Keel as in the reference: the sleep is only the time
a test has to cancel it, however slow the machine); later builds go straight on."""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph


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


@contextlib.asynccontextmanager
async def make_graph(config: dict[str, Any]) -> AsyncIterator[Any]:
    if _first_build((config.get("configurable") or {}).get("hold_file")):
        await asyncio.sleep(60)
    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    yield builder.compile(name="held_factory")
