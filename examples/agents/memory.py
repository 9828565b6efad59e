"""Long-term memory without a model: `remember` writes a fact to the store, `recall` finds the
facts closest in meaning to the question (semantic search with Keel's embedded model).

The user is `config["configurable"]["user_id"]` (default "anonymous"); facts live under
("memories", user_id), so the `/store` API sees exactly what the graph wrote, and the other way.
"""

from __future__ import annotations

import uuid
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore


class State(TypedDict, total=False):
    remember: str  # a fact to keep
    question: str  # what to look up
    answers: list[str]  # the facts found, best first


def namespace(config: RunnableConfig) -> tuple[str, ...]:
    return ("memories", str(config.get("configurable", {}).get("user_id", "anonymous")))


async def remember(state: State, config: RunnableConfig, *, store: BaseStore) -> State:
    """An async node taking the store as an argument."""
    fact = state.get("remember")
    if fact:
        await store.aput(namespace(config), uuid.uuid4().hex, {"text": fact})
    return {}


def recall(state: State, config: RunnableConfig) -> State:
    """A sync node (it runs in a worker thread) reaching the store through `get_store()`."""
    question = state.get("question")
    if not question:
        return {"answers": []}
    found = get_store().search(namespace(config), query=question, limit=3)
    return {"answers": [item.value["text"] for item in found]}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "recall")
builder.add_edge("recall", END)
graph = builder.compile(name="memory")
