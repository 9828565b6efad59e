"""The coder example's deep agent (examples/agents/coder.py: Keel's sandbox backend, every
`execute` approved by a human) with a scripted model that runs the command given in the user's
message, after `$ `, once, then answers with what the tool returned (tests/chaos)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

CODER = Path(__file__).resolve().parents[2] / "examples" / "agents" / "coder.py"


def _coder() -> Any:
    spec = importlib.util.spec_from_file_location("keel_example_coder", CODER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the model's annotations through it
    spec.loader.exec_module(module)
    return module


def run_command(messages: Sequence[BaseMessage]) -> AIMessage:
    done = [m for m in messages if isinstance(m, ToolMessage)]
    if done:
        return AIMessage(f"done: {done[-1].content}")
    asked = next(m for m in messages if isinstance(m, HumanMessage))
    command = str(asked.content).split("$ ", 1)[1]
    call = {"name": "execute", "args": {"command": command}, "id": "call_cmd", "type": "tool_call"}
    return AIMessage("Running it.", tool_calls=[call])


def make_graph(config: dict[str, Any]) -> Any:
    coder = _coder()
    return coder.build(coder.ScriptedModel(script=run_command))
