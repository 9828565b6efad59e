"""An agent whose tools come from an MCP server: the notebook of examples/mcp/notes_server.py,
configured in the `mcp_servers` section of examples/keel.json and reached through
`keel.protocols.mcp_servers.tools("notes")` (Keel starts the server on first use and keeps it for
every run of the process).

"remember <text>" saves a note and lists the notebook; anything else lists it. With no KEEL_MODEL
the model is a scripted fake that decides from what the tools returned (a notebook that cannot be
reached is a tool error it reports); with KEEL_MODEL set (any `init_chat_model` string, as the chat
example) a real model chooses the tools.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langgraph.graph import END, START, MessagesState, StateGraph

from keel.protocols import mcp_servers

SYSTEM = "You keep the user's notebook with the notes tools. Answer briefly."


def text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))


def call(name: str, args: dict[str, Any], n: int) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{name}_{n}", "type": "tool_call"}


def notes_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """The fake model's next step, from the last user message and the tool results since."""
    start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    ask = text(messages[start])
    results = [m for m in messages[start:] if isinstance(m, ToolMessage)]
    n = len(messages)
    if results and results[-1].status == "error":
        return AIMessage(f"I could not use the notebook: {text(results[-1])}")
    if not results and ask.lower().startswith("remember "):
        return AIMessage("Saving it.", tool_calls=[call("add_note", {"text": ask[9:]}, n)])
    if not results or results[-1].name == "add_note":
        return AIMessage("Reading the notebook.", tool_calls=[call("list_notes", {}, n)])
    return AIMessage(f"Your notes:\n{text(results[-1])}")


class ScriptedModel(BaseChatModel):
    """The LLM of the example when no KEEL_MODEL is set."""

    @property
    def _llm_type(self) -> str:
        return "keel-scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=notes_script(messages))])

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self  # type: ignore[return-value]  # the script knows the tools by name


def model() -> BaseChatModel:
    name = os.environ.get("KEEL_MODEL")
    if not name:
        return ScriptedModel()
    from langchain.chat_models import init_chat_model

    return init_chat_model(name)


async def invoke(tools: dict[str, Any], tool_call: dict[str, Any]) -> ToolMessage:
    """The ToolMessage of one call (an error one for a tool the server does not offer, or when
    the server could not be reached to list its tools)."""
    tool = tools.get(tool_call["name"])
    if tool is None:
        name = tool_call["name"]
        error = f"tool {name!r} is not available (is the notes MCP server down?)"
        return ToolMessage(error, tool_call_id=tool_call["id"], name=name, status="error")
    result: ToolMessage = await tool.ainvoke(tool_call)
    return result


def make_graph(config: dict[str, Any]) -> Any:
    chat_model = model()

    async def agent(state: MessagesState) -> dict[str, Any]:
        tools = await mcp_servers.tools("notes")  # listed once per process, then cached
        bound = chat_model.bind_tools(tools)
        return {"messages": [await bound.ainvoke([("system", SYSTEM), *state["messages"]])]}

    async def run_tools(state: MessagesState) -> dict[str, Any]:
        by_name = {t.name: t for t in await mcp_servers.tools("notes")}
        calls = state["messages"][-1].tool_calls  # type: ignore[attr-defined]
        # A server that is down: each call's ToolMessage is an error, and the run goes on.
        done = await asyncio.gather(*(invoke(by_name, c) for c in calls))
        return {"messages": list(done)}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", run_tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(name="notes")
