"""Real agents, only the chat model scripted:

- `hitl_agent`: `langchain.agents.create_agent` with a dataclass context schema (defaults), a
  tool that reads the context and writes custom stream events, and `HumanInTheLoopMiddleware`
  holding `send_email` for review.
- `deep_agent`: `deepagents.create_deep_agent` that plans (write_todos), writes a file, asks
  the general-purpose sub-agent (task tool) to read and summarise it, then calls `publish`,
  which is under `interrupt_on`. Asked "Research otters; the helper publishes", it leaves the
  publishing to the sub-agent, whose own review then interrupts inside the subgraph.

The scripted model's reply is a function of the conversation it is shown, never of how often
it was called, so a retried or resumed step gets the same reply. It streams text word by word
and its tool calls as one closing chunk, as provider integrations do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from deepagents import create_deep_agent
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware
from langchain.tools import ToolRuntime, tool
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

Script = Callable[[Sequence[BaseMessage]], AIMessage]


def text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))


def first_human(messages: Sequence[BaseMessage]) -> str:
    return next((text_of(m) for m in messages if isinstance(m, HumanMessage)), "")


def last_tool(messages: Sequence[BaseMessage]) -> ToolMessage | None:
    """The tool result the model is answering, if its last input is one."""
    last = messages[-1] if messages else None
    return last if isinstance(last, ToolMessage) else None


def call(name: str, call_id: str, **args: Any) -> AIMessage:
    """An AI turn calling one tool."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


class ScriptedChatModel(BaseChatModel):
    """Replies with `script(messages)`; binding tools changes nothing."""

    script: Script

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self.script(messages)
        for word in (w for w in re.split(r"(\s)", text_of(reply)) if w):
            yield _emit(AIMessageChunk(content=word), run_manager)
        calls = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(reply.tool_calls)
        ]
        yield _emit(
            AIMessageChunk(content="", tool_call_chunks=calls, chunk_position="last"), run_manager
        )


def _emit(
    message: AIMessageChunk, run_manager: CallbackManagerForLLMRun | None
) -> ChatGenerationChunk:
    chunk = ChatGenerationChunk(message=message)
    if run_manager:
        run_manager.on_llm_new_token(str(message.content), chunk=chunk)
    return chunk


# ---------------------------------------------------------------- create_agent with HITL
@dataclass
class Caller:
    """The agent's runtime context; every field has a default."""

    user: str = "anonymous"
    signature: str = "-- Keel"


@tool
def get_weather(city: str, runtime: ToolRuntime[Caller]) -> str:
    """Look up the weather in a city."""
    runtime.stream_writer({"progress": f"looking up {city}"})
    return f"sunny in {city} for {runtime.context.user}"


@tool
def send_email(to: str, body: str, runtime: ToolRuntime[Caller]) -> str:
    """Send an e-mail."""
    return f"sent to {to}: {body} {runtime.context.signature}"


def hitl_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """Weather first, then an e-mail about it (held for review), then a closing word."""
    result = last_tool(messages)
    if result is None:
        return call("get_weather", "call_weather", city="Paris")
    if result.name == "get_weather":
        return call("send_email", "call_email", to="bob", body=f"It is {text_of(result)}")
    if result.status == "error":
        return AIMessage(content=f"Not sent: {text_of(result)}")
    return AIMessage(content=f"Done: {text_of(result)}")


REVIEW: list[AgentMiddleware[Any, Caller]] = [
    HumanInTheLoopMiddleware(interrupt_on={"send_email": True})
]
hitl_agent = create_agent(
    ScriptedChatModel(script=hitl_script),
    tools=[get_weather, send_email],
    context_schema=Caller,
    middleware=REVIEW,
    name="hitl_agent",
)


# ---------------------------------------------------------------- deep agent
NOTES = "Otters hold hands while they sleep."
TODOS = [
    {"content": "Take notes", "status": "in_progress"},
    {"content": "Publish a summary", "status": "pending"},
]
SUMMARY = "Summary: otters hold hands."
# The sub-agent's task: summarise only, or also publish (held for review inside the sub-agent).
SUBTASK = "Summarise /notes.md"
SUBTASK_PUBLISH = "Summarise /notes.md and publish it"
DELEGATE_PUBLISHING = "Research otters; the helper publishes"


@tool
def publish(title: str) -> str:
    """Publish a summary."""
    return f"published {title!r}"


def _subagent_script(task: str, result: ToolMessage | None) -> AIMessage:
    if result is None:
        return call("read_file", "call_read", file_path="/notes.md")
    if task == SUBTASK_PUBLISH and result.name == "read_file":
        return call("publish", "call_sub_publish", title=SUMMARY)
    return AIMessage(content=SUMMARY if task == SUBTASK else f"Done: {text_of(result)}")


def deep_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """The main agent plans, writes notes, delegates a summary (and maybe its publishing) to
    the general-purpose sub-agent, publishes it itself otherwise. The sub-agent's conversation
    starts with the task description."""
    request = first_human(messages)
    result = last_tool(messages)
    if request in (SUBTASK, SUBTASK_PUBLISH):
        return _subagent_script(request, result)
    delegate = request == DELEGATE_PUBLISHING
    if result is None:
        return call("write_todos", "call_todos", todos=TODOS)
    if result.name == "write_todos":
        return call("write_file", "call_write", file_path="/notes.md", content=NOTES)
    if result.name == "write_file":
        task = SUBTASK_PUBLISH if delegate else SUBTASK
        return call("task", "call_task", description=task, subagent_type="general-purpose")
    if result.name == "task" and not delegate:
        return call("publish", "call_publish", title=text_of(result))
    return AIMessage(content=f"Finished: {text_of(result)}")


deep_agent = create_deep_agent(
    ScriptedChatModel(script=deep_script),
    tools=[publish],
    interrupt_on={"publish": True},
    name="deep_agent",
)


PER_CALL: list[AgentMiddleware[Any, Caller]] = [
    HumanInTheLoopMiddleware(interrupt_on={"send_email": True}, interrupt_mode="per_call")
]
hitl_per_call = create_agent(
    ScriptedChatModel(script=hitl_script),
    tools=[get_weather, send_email],
    context_schema=Caller,
    middleware=PER_CALL,
    name="hitl_per_call",
)
