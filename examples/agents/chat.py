"""A chat agent whose model comes from KEEL_MODEL (any `init_chat_model` string).

Examples: KEEL_MODEL=openai:gpt-4o-mini, KEEL_MODEL=anthropic:claude-sonnet-4-5, or a local
OpenAI-compatible server (vLLM, llama.cpp, Ollama):
    KEEL_MODEL=openai:my-model OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=none
With no KEEL_MODEL set the agent answers with instructions instead of failing.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph

HELP = (
    "No model is configured. Set KEEL_MODEL to an init_chat_model string, e.g. "
    "KEEL_MODEL=openai:gpt-4o-mini (with OPENAI_API_KEY), or point it at a local "
    "OpenAI-compatible server: KEEL_MODEL=openai:<model> OPENAI_BASE_URL=http://127.0.0.1:8000/v1 "
    "OPENAI_API_KEY=none. Install the provider package (pip install 'keel-runtime[models]' "
    "langchain-openai) and restart Keel."
)


def _model() -> Any:
    name = os.environ.get("KEEL_MODEL")
    if not name:
        return None
    from langchain.chat_models import init_chat_model

    return init_chat_model(name)


def make_graph(config: dict[str, Any]) -> Any:
    model = _model()

    async def respond(state: MessagesState) -> dict[str, Any]:
        if model is None:
            return {"messages": [AIMessage(content=HELP)]}
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    return builder.compile(name="chat")
