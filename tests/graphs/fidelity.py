"""Graphs for run-execution fidelity: runtime context with defaults, a private state key outside
the output schema, and an interrupt in a graph with an output schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt


@dataclass
class Settings:
    """A dataclass context schema whose fields all have defaults."""

    user: str = "anonymous"
    greeting: str = "hello"


class Optional(TypedDict, total=False):
    """A TypedDict context schema: every key may be missing."""

    user: str


class Greeting(TypedDict, total=False):
    name: str
    reply: str


def greet_dataclass(state: Greeting, runtime: Runtime[Settings]) -> Greeting:
    ctx = runtime.context
    return {"reply": f"{ctx.greeting} {ctx.user} ({state.get('name', '')})"}


def greet_typeddict(state: Greeting, runtime: Runtime[Optional]) -> Greeting:
    return {"reply": f"hi {runtime.context.get('user', 'anonymous')}"}


_dc = StateGraph(Greeting, context_schema=Settings)
_dc.add_node("greet", greet_dataclass)
_dc.add_edge(START, "greet")
_dc.add_edge("greet", END)
context_dataclass = _dc.compile(name="context_dataclass")


def echo_configurable(state: Greeting, runtime: Runtime[Settings]) -> Greeting:
    """What the node sees of the context in both places: its runtime and `configurable`."""
    conf = get_config().get("configurable") or {}
    ctx = runtime.context
    seen = [conf.get(key) for key in ("user", "greeting", "unknown")]
    return {"reply": f"context {ctx.greeting} {ctx.user}; configurable {' '.join(map(str, seen))}"}


_cc = StateGraph(Greeting, context_schema=Settings)
_cc.add_node("echo", echo_configurable)
_cc.add_edge(START, "echo")
_cc.add_edge("echo", END)
context_configurable = _cc.compile(name="context_configurable")

_td = StateGraph(Greeting, context_schema=Optional)
_td.add_node("greet", greet_typeddict)
_td.add_edge(START, "greet")
_td.add_edge("greet", END)
context_typeddict = _td.compile(name="context_typeddict")


class Input(TypedDict, total=False):
    question: str
    pause: bool


class Output(TypedDict, total=False):
    question: str
    answer: str


class State(Input, Output, total=False):
    scratch: list[str]  # private: outside the output schema


def think(state: State) -> State:
    return {"scratch": [f"thinking about {state.get('question', '')}"]}


def ask(state: State) -> State:
    if not state.get("pause"):
        return {}
    approved = interrupt({"confirm": state.get("question", "")})
    return {"scratch": [*state.get("scratch", []), f"human said {approved}"]}


def answer(state: State) -> State:
    return {"answer": f"{len(state.get('scratch', []))} notes"}


_priv = StateGraph(State, input_schema=Input, output_schema=Output)
_priv.add_node("think", think)
_priv.add_node("ask", ask)
_priv.add_node("answer", answer)
_priv.add_edge(START, "think")
_priv.add_edge("think", "ask")
_priv.add_edge("ask", "answer")
_priv.add_edge("answer", END)
private = _priv.compile(name="private")
