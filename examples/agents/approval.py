"""An approval workflow: proposes an action, then waits for a human to approve, edit or reject."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    request: str
    action: str
    decision: Literal["approved", "edited", "rejected"]
    result: str


def propose(state: State) -> State:
    return {"action": f"send e-mail about {state.get('request', 'something')}"}


def ask_human(state: State) -> State:
    answer: Any = interrupt(
        {
            "question": "Approve this action?",
            "action": state["action"],
            "options": ["approve", "edit", "reject"],
        }
    )
    if not isinstance(answer, dict):
        answer = {"type": str(answer)}
    kind = answer.get("type", "reject")
    if kind == "approve":
        return {"decision": "approved"}
    if kind == "edit":
        return {"decision": "edited", "action": str(answer.get("action", state["action"]))}
    return {"decision": "rejected"}


def execute(state: State) -> State:
    if state["decision"] == "rejected":
        return {"result": "nothing done"}
    return {"result": f"done: {state['action']}"}


builder = StateGraph(State)
builder.add_node("propose", propose)
builder.add_node("ask_human", ask_human)
builder.add_node("execute", execute)
builder.add_edge(START, "propose")
builder.add_edge("propose", "ask_human")
builder.add_edge("ask_human", "execute")
builder.add_edge("execute", END)
graph = builder.compile(name="approval")
