"""The benchmark's graphs: no LLM, only LangGraph. Every contender loads this same file.

This module must import nothing but LangGraph and the standard library: the harness copies it
next to each contender's config file and each contender imports it in its own virtualenv.

    three       3 nodes in a chain, each appends to a list (the reference workload)
    twenty      20 nodes in a chain
    six         6 nodes in a chain, each appends ~120 characters (bench/soak.py, bench/sizing.py)
    approval    one node, then an `interrupt()`, then one node (interrupt/resume round trip)
    stream200   one node that emits 200 custom stream events
    burst       one node that emits `count` custom stream events (input, default 200) as fast as
                it can (bench/threadstream.py)
    sleep1      one node that awaits 1 s (an LLM call's stand-in)
    long        6 nodes that each await 0.5 s (killed mid-run for the recovery figure)
    heavy       10 nodes, each a fixed pure-Python loop (~4-5 ms of CPU): a run whose own work,
                not the server's bookkeeping, dominates (the worker-scaling figure)

No `from __future__ import annotations`: Aegra loads graph files without registering them in
`sys.modules`, so string annotations on the state type could not be resolved there.
"""

import asyncio
import itertools
import operator
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    answer: str


def _chain(name: str, length: int, text: str = "") -> Any:
    """`length` nodes in a chain; each appends its name and `text` to `steps`."""
    builder = StateGraph(State)
    names = [f"n{i:02d}" for i in range(length)]
    for node in names:

        def step(state: State, _node: str = node) -> State:
            return {"steps": [_node + text]}

        builder.add_node(node, step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(name=name)


three = _chain("three", 3)
twenty = _chain("twenty", 20)
SIX_STEPS = 6
six = _chain("six", SIX_STEPS, ":" + "x" * 120)  # the soak's and the sizing's 6-step run


def _propose(state: State) -> State:
    return {"steps": ["proposed"]}


def _ask(state: State) -> State:
    answer = interrupt({"question": "approve?"})
    return {"steps": ["asked"], "answer": str(answer)}


def _finish(state: State) -> State:
    return {"steps": ["finished"]}


_approval = StateGraph(State)
_approval.add_node("propose", _propose)
_approval.add_node("ask", _ask)
_approval.add_node("finish", _finish)
_approval.add_edge(START, "propose")
_approval.add_edge("propose", "ask")
_approval.add_edge("ask", "finish")
_approval.add_edge("finish", END)
approval = _approval.compile(name="approval")


def _emit(state: State) -> State:
    writer = get_stream_writer()
    for i in range(200):
        writer({"i": i})
    return {"steps": ["emitted"]}


class BurstState(TypedDict, total=False):
    count: int
    emitted: int


def _burst(state: BurstState) -> BurstState:
    writer = get_stream_writer()
    count = state.get("count", 200)
    for i in range(count):
        writer({"i": i})
    return {"emitted": count}


_burster = StateGraph(BurstState)
_burster.add_node("burst", _burst)
_burster.add_edge(START, "burst")
_burster.add_edge("burst", END)
burst = _burster.compile(name="burst")


_stream = StateGraph(State)
_stream.add_node("emit", _emit)
_stream.add_edge(START, "emit")
_stream.add_edge("emit", END)
stream200 = _stream.compile(name="stream200")


async def _sleep(state: State) -> State:
    await asyncio.sleep(1.0)
    return {"steps": ["slept"]}


_sleeper = StateGraph(State)
_sleeper.add_node("sleep", _sleep)
_sleeper.add_edge(START, "sleep")
_sleeper.add_edge("sleep", END)
sleep1 = _sleeper.compile(name="sleep1")


LONG_STEPS = 6
LONG_STEP_SECONDS = 0.5


def _long_chain() -> Any:
    builder = StateGraph(State)
    names = [f"s{i}" for i in range(LONG_STEPS)]
    for node in names:

        async def step(state: State, _node: str = node) -> State:
            await asyncio.sleep(LONG_STEP_SECONDS)
            return {"steps": [_node]}

        builder.add_node(node, step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(name="long")


long = _long_chain()

HEAVY_NODES = 10
HEAVY_LOOP = 40_000  # iterations per node: a fixed amount of work, whatever the machine


def _burn(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def _heavy_chain() -> Any:
    builder = StateGraph(State)
    names = [f"h{i}" for i in range(HEAVY_NODES)]
    for node in names:

        def step(state: State, _node: str = node) -> State:
            _burn(HEAVY_LOOP)
            return {"steps": [_node]}

        builder.add_node(node, step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(name="heavy")


heavy = _heavy_chain()

GRAPHS = ("three", "twenty", "approval", "stream200", "sleep1", "long", "heavy")
