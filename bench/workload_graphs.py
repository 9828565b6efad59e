"""The workloads of the soak (bench/soak.py) and of the sizing (bench/sizing.py): a chat turn, a
6-step chain, an approval. No network.

    chat      a scripted fake chat model (langchain-core's GenericFakeChatModel) streams a
              ~24-word reply token by token (`messages-tuple`), between custom events
    six       6 nodes in a chain, each appends a ~120-character step to the state
    approval  one node, then an `interrupt()`, then one node (interrupt/resume pairs)

Only Keel loads this file (the soak copies it next to its keel.json), so it may use
langchain-core, which Keel's environment has.
"""

import itertools
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

REPLY_WORDS = 24
CUSTOM_EVENTS = 4  # around the model call: CUSTOM_EVENTS // 2 before, the rest after
STEPS = 6


class State(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    answer: str


def reply_to(text: str) -> str:
    words = [f"w{i}" for i in range(REPLY_WORDS - 2)]
    return f"echo {text[:40]} " + " ".join(words)


async def _respond(state: MessagesState) -> dict[str, Any]:
    writer = get_stream_writer()
    before = CUSTOM_EVENTS // 2
    for i in range(before):
        writer({"phase": "thinking", "i": i})
    last = state["messages"][-1].content if state["messages"] else ""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply_to(str(last)))]))
    message = await model.ainvoke(state["messages"])
    for i in range(before, CUSTOM_EVENTS):
        writer({"phase": "done", "i": i})
    return {"messages": [message]}


_chat = StateGraph(MessagesState)
_chat.add_node("respond", _respond)
_chat.add_edge(START, "respond")
_chat.add_edge("respond", END)
chat = _chat.compile(name="chat")


def _six() -> Any:
    builder = StateGraph(State)
    names = [f"s{i}" for i in range(STEPS)]
    for node in names:

        def step(state: State, _node: str = node) -> State:
            return {"steps": [f"{_node}:" + "x" * 120]}

        builder.add_node(node, step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(name="six")


six = _six()


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

GRAPHS = ("chat", "six", "approval")
