"""The chat workload of the soak (bench/soak.py) and of the sizing (bench/sizing.py). No network.

    chat      a scripted fake chat model (langchain-core's GenericFakeChatModel) streams a
              ~24-word reply token by token (`messages-tuple`), between custom events

Their other workloads (`six`, `approval`) are bench/graphs.py's. Only Keel loads this file (the
soak copies it next to its keel.json), so it may use langchain-core, which Keel's environment has.
"""

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

REPLY_WORDS = 24
CUSTOM_EVENTS = 4  # around the model call: CUSTOM_EVENTS // 2 before, the rest after


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
