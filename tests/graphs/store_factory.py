"""A graph factory that reads the store while it builds (tests/e2e/test_auth_factory_store.py):
with `KEEL_TEST_FACTORY_LOG` set, every build appends `<access_context> <texts>` to that file,
the texts being those of the items under ("notes",) the factory's store holds."""

from __future__ import annotations

import json
import os
from typing import Any, TypedDict

from langgraph.graph import START, StateGraph
from langgraph_sdk.runtime import ServerRuntime


class State(TypedDict, total=False):
    n: int


def bump(state: State) -> State:
    return {"n": state.get("n", 0) + 1}


def _append(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line)


async def make_graph(runtime: ServerRuntime[Any]) -> Any:
    log = os.environ.get("KEEL_TEST_FACTORY_LOG")
    if log and runtime.store is not None:
        found = await runtime.store.asearch(("notes",), limit=100)
        texts = sorted(str(item.value.get("text")) for item in found)
        _append(log, f"{runtime.access_context} {json.dumps(texts)}\n")
    builder = StateGraph(State)
    builder.add_node("bump", bump)
    builder.add_edge(START, "bump")
    return builder.compile()
