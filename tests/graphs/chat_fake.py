"""A chat graph that streams tokens from a scripted fake chat model (no real LLM)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))


async def model(state: MessagesState) -> dict[str, Any]:
    last = _text(state["messages"][-1]) if state["messages"] else ""
    reply = f"you said {last}"
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    message = await llm.ainvoke(state["messages"])
    return {"messages": [message]}


def note(state: MessagesState) -> dict[str, Any]:
    """A whole (not streamed) message: `messages` mode reports it as `messages/complete`."""
    count = len(state["messages"])
    return {"messages": [AIMessage(content=f"noted {count} messages", id=f"note-{count}")]}


builder = StateGraph(MessagesState)
builder.add_node("model", model)
builder.add_node("note", note)
builder.add_edge(START, "model")
builder.add_edge("model", "note")
builder.add_edge("note", END)
graph = builder.compile(name="chat_fake")
