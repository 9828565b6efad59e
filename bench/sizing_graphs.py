"""Graphs for `python -m bench sizing` besides bench/graphs.py's `three` and `approval`.

    chat  a scripted fake chat model (langchain-core's GenericFakeChatModel) streams a reply
          (the first 40 characters of the question, then 22 words: 31 words and 63 chunks for
          bench/sizing.py's question) token by token, between 4 custom events
    six   6 nodes in a chain, each appends a ~120-character step to the state

Only Keel loads this file, so it may use langchain-core.
"""

import itertools
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

REPLY_WORDS = 22
CUSTOM_EVENTS = 4
STEPS = 6
STEP_TEXT = "x" * 110


async def _respond(state: MessagesState) -> dict[str, Any]:
    writer = get_stream_writer()
    for i in range(CUSTOM_EVENTS // 2):
        writer({"phase": "thinking", "i": i})
    last = str(state["messages"][-1].content) if state["messages"] else ""
    words = " ".join(f"word{i}" for i in range(REPLY_WORDS))
    reply = AIMessage(content=f"echo {last[:40]} {words}")
    message = await GenericFakeChatModel(messages=iter([reply])).ainvoke(state["messages"])
    for i in range(CUSTOM_EVENTS // 2, CUSTOM_EVENTS):
        writer({"phase": "done", "i": i})
    return {"messages": [message]}


_chat = StateGraph(MessagesState)
_chat.add_node("respond", _respond)
_chat.add_edge(START, "respond")
_chat.add_edge("respond", END)
chat = _chat.compile(name="chat")


class Steps(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]


def _six() -> Any:
    builder = StateGraph(Steps)
    names = [f"s{i}" for i in range(STEPS)]
    for node in names:

        def step(state: Steps, _node: str = node) -> Steps:
            return {"steps": [f"{_node}: {STEP_TEXT}"]}

        builder.add_node(node, step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(name="six")


six = _six()
