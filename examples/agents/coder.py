"""A coding deep agent (deepagents) whose files and commands live in the thread's Keel sandbox.

It writes `calc.py` and its tests, runs them, reads the failure, fixes the file and runs the tests
again. Every command the agent wants to run (`execute`) waits for a human: the run stops at an
interrupt and continues with `Command(resume={"decisions": [{"type": "approve"}]})` (or
`{"type": "reject", "message": "..."}`), the shape of langchain's HumanInTheLoopMiddleware.

Needs the `sandbox` section in keel.json (examples/keel.json has one) and the `deepagents` extra
(`pip install 'keel-runtime[deepagents]'`). With no KEEL_MODEL the model is a scripted fake whose
every step depends on what the tools returned (it fixes the file only after the tests failed);
with KEEL_MODEL set (any `init_chat_model` string, as the chat example) a real model codes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable

W = "/workspace"  # the thread's workspace, inside the sandbox
TASK = "Write calc.py with add(a, b) and unit tests for it, run them and make them pass."
SYSTEM = (
    f"You are a careful Python developer. Your files live in {W} (use absolute paths under "
    f"{W}); run commands with `execute` (they run in {W}; each needs a human's approval)."
)
BUGGY = "def add(a, b):\n    return a - b\n"
TESTS = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class TestAdd(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\n"
    'if __name__ == "__main__":\n    unittest.main()\n'
)
RUN_TESTS = "python3 -B -m unittest -v test_calc"  # -B: no stale .pyc after a same-size edit
Script = Callable[[Sequence[BaseMessage]], AIMessage]


def text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))


def call(name: str, args: dict[str, Any], n: int) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{name}_{n}", "type": "tool_call"}


def coder_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """The fake model's next step, decided from the conversation so far (what the tools said)."""
    results = [m for m in messages if isinstance(m, ToolMessage)]
    n = sum(isinstance(m, AIMessage) for m in messages)
    if not results:
        writes = [("calc.py", BUGGY), ("test_calc.py", TESTS)]
        calls = [call("write_file", {"file_path": f"{W}/{f}", "content": c}, i) for i, (f, c) in
                 enumerate(writes)]  # fmt: skip
        return AIMessage("I'll write the module and its tests.", tool_calls=calls)
    last = results[-1]
    if last.name == "execute" and last.status == "error":  # the human rejected the command
        return AIMessage(f"I did not run the command: {text(last)}")
    if last.name == "write_file":
        return AIMessage(
            "Running the tests.", tool_calls=[call("execute", {"command": RUN_TESTS}, n)]
        )
    if last.name == "execute":
        return _after_tests(text(last), any(m.name == "edit_file" for m in results), n)
    if last.name == "read_file":
        return _fix(text(last), n)
    if last.name == "edit_file":
        return AIMessage("Fixed; running the tests again.",
                         tool_calls=[call("execute", {"command": RUN_TESTS}, n)])  # fmt: skip
    return AIMessage(f"Unexpected tool result: {text(last)[:200]}")


def _after_tests(output: str, edited: bool, n: int) -> AIMessage:
    if "[Command succeeded with exit code 0]" in output:
        return AIMessage("All tests pass: calc.add is fixed.")
    failed = re.search(r"FAIL: test_(\w+)", output)
    if failed is None or edited:  # still failing after the fix: give up, say so
        return AIMessage(f"The tests still fail:\n{output[-500:]}")
    path = f"{W}/calc.py"  # test_add failed: read the function it tests
    return AIMessage(f"test_{failed.group(1)} fails; reading calc.py.",
                     tool_calls=[call("read_file", {"file_path": path}, n)])  # fmt: skip


def _fix(source: str, n: int) -> AIMessage:
    if "return a - b" not in source:
        return AIMessage("I cannot see the bug in calc.py.")
    args = {"file_path": f"{W}/calc.py", "old_string": "return a - b", "new_string": "return a + b"}
    return AIMessage("add subtracts; fixing it.", tool_calls=[call("edit_file", args, n)])


class ScriptedModel(BaseChatModel):
    """The LLM of the example when no KEEL_MODEL is set: `script` picks each reply."""

    script: Script = coder_script

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
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])

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


def build(chat_model: BaseChatModel, system: str = SYSTEM) -> Any:
    """A deep agent over the thread's sandbox; every `execute` needs approval."""
    from deepagents import create_deep_agent

    from keel.sandbox.deepagents import KeelSandboxBackend

    return create_deep_agent(
        model=chat_model,
        system_prompt=system,
        backend=KeelSandboxBackend(),
        interrupt_on={"execute": True},
        name="coder",
    )


def make_graph(config: dict[str, Any]) -> Any:
    return build(model())
