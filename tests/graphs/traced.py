"""An agent for the tracing tests (tests/e2e/test_tracing.py): `create_agent` with a scripted
chat model that reports token usage, and one tool that writes a log line.

The model's reply depends only on the conversation: no tool result yet → call `add(2, 3)`;
else → say the tool's result. Usage is a function of the conversation's length."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.tools import tool
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable

log = logging.getLogger("tests.traced")
MODEL = "scripted-usage-1"


def usage(messages: Sequence[BaseMessage]) -> dict[str, int]:
    return {"input_tokens": 10 * len(messages), "output_tokens": 7, "total_tokens": 0}


class UsageModel(BaseChatModel):
    """Replies per the script above, with `usage_metadata` on every reply."""

    model_name: str = MODEL

    @property
    def _llm_type(self) -> str:
        return "scripted-usage"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        spent = {**usage(messages)}
        spent["total_tokens"] = spent["input_tokens"] + spent["output_tokens"]
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"the sum is {last.content}", usage_metadata=spent)
        else:
            call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}
            reply = AIMessage(content="", tool_calls=[call], usage_metadata=spent)
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    log.warning("adding %s and %s", a, b)
    return a + b


graph = create_agent(UsageModel(), tools=[add], name="traced")
