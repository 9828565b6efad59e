"""One node that runs a shell command in the thread's sandbox (keel.sandbox.sandboxes.current()):
for the several-hosts tests (tests/e2e/test_workspace_hosts.py). Input `cmd`; output `stdout`,
`exit_code`, and `error`: the detail of a Keel error the command's sandbox raised (the workspace
not published), as a tool would show it to the agent.

`hang_on`: when it names this process's `KEEL_SANDBOX_ROOT`, the command then marks the workspace
(`started`) and sleeps: a test kills that host mid-command."""

from __future__ import annotations

import os
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    cmd: str
    hang_on: str
    stdout: str
    exit_code: int
    error: str


async def shell(state: State) -> State:
    # Imported here: the reference server loads tests/graphs/keel.json without Keel installed.
    from keel.errors import WorkspaceNotPublished
    from keel.sandbox.sandboxes import current

    cmd = state["cmd"]
    if state.get("hang_on") and state.get("hang_on") == os.environ.get("KEEL_SANDBOX_ROOT"):
        cmd += "; touch started; sleep 60"
    try:
        result = await current().run(cmd)
    except WorkspaceNotPublished as exc:
        return {"error": exc.detail, "stdout": getattr(exc.result, "stdout", "")}
    return {"stdout": result.stdout, "exit_code": result.exit_code, "error": ""}


builder = StateGraph(State).add_node("shell", shell)
graph = builder.add_edge(START, "shell").add_edge("shell", END).compile()
