"""The chat workload of the soak (bench/soak.py) and of the sizing (bench/sizing.py). No network.

    chat      a scripted fake chat model (langchain-core's GenericFakeChatModel) streams a
              ~24-word reply token by token (`messages-tuple`), between custom events
    agent     `create_agent` with a scripted model that calls one tool, then answers with its
              result: 3 nodes, 2 model calls, 1 tool call (bench/tracing_cost.py's agent run)

Their other workloads (`six`, `approval`) are bench/graphs.py's. Only Keel loads this file (the
soak copies it next to its keel.json), so it may use langchain-core, which Keel's environment has.
"""

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.tools import tool
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
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


class ToolCallingModel(BaseChatModel):
    """Asks for `add(2, 3)` until the conversation holds its result, then says it."""

    @property
    def _llm_type(self) -> str:
        return "bench-tool-calling"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        usage = {"input_tokens": 10 * len(messages), "output_tokens": 7, "total_tokens": 0}
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"the sum is {last.content}", usage_metadata=usage)
        else:
            call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}
            reply = AIMessage(content="", tool_calls=[call], usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


agent = create_agent(ToolCallingModel(), tools=[add], name="agent")
