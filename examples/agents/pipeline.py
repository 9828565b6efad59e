"""A multi-step pipeline that streams custom progress events while it works."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    summary: str


def research(state: State) -> State:
    writer = get_stream_writer()
    writer({"stage": "research", "progress": 0.33})
    return {"steps": [f"researched {state.get('topic', 'nothing')}"]}


def draft(state: State) -> State:
    writer = get_stream_writer()
    writer({"stage": "draft", "progress": 0.66})
    return {"steps": ["drafted"]}


def review(state: State) -> State:
    writer = get_stream_writer()
    writer({"stage": "review", "progress": 1.0})
    return {"steps": ["reviewed"], "summary": f"{len(state.get('steps', [])) + 1} steps done"}


builder = StateGraph(State)
builder.add_node("research", research)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_edge(START, "research")
builder.add_edge("research", "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", END)
graph = builder.compile(name="pipeline")
