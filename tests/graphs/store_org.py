"""A graph that writes to the store and reports what it finds there: what a run of one
organisation can reach (tests/integration/test_cron_auth.py). `remember` (async, the `store`
argument) puts `put` under `namespace`; `look` (sync, `get_store()` in a worker thread) lists
what the store holds: the items under `namespace` and every namespace."""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore


class State(TypedDict, total=False):
    namespace: list[str]
    put: str
    seen: list[str]
    namespaces: list[list[str]]


async def remember(state: State, *, store: BaseStore) -> State:
    if state.get("put"):
        await store.aput(tuple(state["namespace"]), state["put"], {"text": state["put"]})
    return {}


def look(state: State) -> State:
    store = get_store()
    found = store.search(tuple(state["namespace"]), limit=100)
    return {
        "seen": sorted(item.value["text"] for item in found),
        "namespaces": [list(ns) for ns in store.list_namespaces()],
    }


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("look", look)
builder.add_edge(START, "remember")
builder.add_edge("remember", "look")
builder.add_edge("look", END)
graph = builder.compile(name="store_org")
