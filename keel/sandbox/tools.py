"""LangChain tools an agent can bind: `shell` (a shell command) and `python` (a program run with
python3), both in the current thread's sandbox (docs/sandbox.md, "In a graph"). The sandbox is
resolved from the tool's RunnableConfig (its thread), so the tools only work inside a run
executed by Keel with a `sandbox` section. They are coroutines only (`ainvoke`): a command never
blocks the event loop."""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from keel.sandbox import Result, current

__all__ = ["format_result", "python", "shell"]


def format_result(result: Result) -> str:
    """What the model reads: the exit code, stdout and stderr (each only when not empty), and
    a note when the command was killed at the wall time or its output cut."""
    parts = [f"exit code: {result.exit_code}"]
    if result.timed_out:
        parts.append("note: killed at the sandbox's wall-time limit")
    if result.truncated:
        parts.append("note: output truncated at the sandbox's limit")
    if result.stdout:
        parts.append(f"stdout:\n{result.stdout.rstrip()}")
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr.rstrip()}")
    return "\n".join(parts)


@tool
async def shell(command: str, config: RunnableConfig) -> str:
    """Run a shell command (sh -c) in this conversation's sandboxed workspace, the working
    directory /workspace (files persist between commands; no network). Returns the exit code,
    stdout and stderr."""
    return format_result(await current(config).run(command))


@tool
async def python(code: str, config: RunnableConfig) -> str:
    """Run a Python program with python3 in this conversation's sandboxed workspace, the
    working directory /workspace (files persist between calls; no network). Print what you
    need to see. Returns the exit code, stdout and stderr."""
    return format_result(await current(config).run(["python3", "-c", code]))
