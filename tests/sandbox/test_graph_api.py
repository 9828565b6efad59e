"""The graph-facing API, in process, with real bubblewrap and real LangGraph runs:
`keel.sandbox.current()` inside async and sync nodes and inside tools (LangGraph copies the
context into its tasks and threads), the `shell` / `python` tools, and the deepagents backend
(its file tools and `execute` land in the thread's workspace)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from keel.errors import ConfigError
from keel.sandbox import current
from keel.sandbox.deepagents import KeelSandboxBackend
from keel.sandbox.sandboxes import Sandboxes
from keel.sandbox.tools import python, shell
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from tests.support.sandbox import traversable_dir

LIMITS = SandboxLimits(wall_seconds=10, output_bytes=4096)


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    """The service over a root the sandbox's user can traverse (docs/sandbox.md)."""
    with traversable_dir("keel-graph-api-") as base:
        # One host, no database: sync off (the storage is never used).
        settings = SandboxSettings(root=base / "ws", limits=LIMITS, sync=False)
        yield Sandboxes(settings, None)  # type: ignore[arg-type]


def thread(tid: str) -> RunnableConfig:
    return {"configurable": {"thread_id": tid}}


def test_current_outside_a_keel_run_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sandbox"):
        current({"configurable": {"thread_id": "t"}})


async def test_current_without_a_thread_is_a_config_error(sandboxes: Sandboxes) -> None:
    with sandboxes.active(), pytest.raises(ConfigError, match="no thread"):
        current({"configurable": {}})


class Probe(TypedDict, total=False):
    seen: list[str]


async def async_node(state: Probe) -> Probe:
    result = await current().run("echo async > a.txt && pwd")
    return {"seen": [result.stdout.strip()]}


def sync_node(state: Probe, config: RunnableConfig) -> Probe:
    """A sync node runs in LangGraph's thread pool: the context (the active service) follows."""
    sb = current(config)
    return {"seen": [*state["seen"], sb.read("a.txt").decode().strip(), sb.workspace.name]}


async def test_nodes_of_a_real_graph_see_their_threads_sandbox(sandboxes: Sandboxes) -> None:
    builder = StateGraph(Probe)
    builder.add_node("a", async_node)
    builder.add_node("b", sync_node)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    graph = builder.compile()
    with sandboxes.active():
        one, two = await asyncio.gather(
            graph.ainvoke({}, thread("t-one")), graph.ainvoke({}, thread("t-two"))
        )
    assert one["seen"] == ["/workspace", "async", "t-one"]
    assert two["seen"] == ["/workspace", "async", "t-two"]
    assert sorted(os.listdir(sandboxes.settings.root)) == ["t-one", "t-two"]


def tool_calls_graph() -> Any:
    def model(state: MessagesState) -> dict[str, Any]:
        command = "echo hi > f.txt; cat f.txt; echo oops >&2; exit 3"
        code = "print(open('f.txt').read().upper())"
        calls = [
            {"name": "shell", "args": {"command": command}, "id": "c1", "type": "tool_call"},
            {"name": "python", "args": {"code": code}, "id": "c2", "type": "tool_call"},
        ]
        return {"messages": [AIMessage("", tool_calls=calls)]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([shell, python]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    return builder.compile()


async def test_shell_and_python_tools_run_in_the_threads_workspace(sandboxes: Sandboxes) -> None:
    with sandboxes.active():
        out = await tool_calls_graph().ainvoke({"messages": []}, thread("t-tools"))
    sh, py = (m.content for m in out["messages"][-2:])
    assert sh == "exit code: 3\nstdout:\nhi\nstderr:\noops"
    assert py == "exit code: 0\nstdout:\nHI"
    assert (sandboxes.settings.root / "t-tools" / "f.txt").read_text() == "hi\n"


async def test_the_tools_outside_keel_say_why() -> None:
    with pytest.raises(ConfigError, match="sandbox"):
        await shell.ainvoke({"command": "true"}, thread("t"))


async def test_the_deepagents_backend_works_in_the_workspace(sandboxes: Sandboxes) -> None:
    backend = KeelSandboxBackend()
    with sandboxes.active():
        # The backend resolves the sandbox from LangGraph's config, as inside a tool call.
        from langchain_core.runnables.config import var_child_runnable_config

        token = var_child_runnable_config.set(thread("t-deep"))
        try:
            await _exercise(backend, sandboxes.settings.root / "t-deep")
        finally:
            var_child_runnable_config.reset(token)


async def _exercise(backend: KeelSandboxBackend, ws: Path) -> None:
    assert (await backend.awrite("/workspace/pkg/mod.py", "x = 1\ny = 2\n")).error is None
    assert (ws / "pkg" / "mod.py").read_text() == "x = 1\ny = 2\n"
    read = await backend.aread("/workspace/pkg/mod.py")
    assert read.file_data is not None and read.file_data["content"] == "x = 1\ny = 2"
    edit = await backend.aedit("/workspace/pkg/mod.py", "y = 2", "y = 3")
    assert edit.error is None and (ws / "pkg" / "mod.py").read_text() == "x = 1\ny = 3\n"
    listing = await backend.als("/workspace")
    assert listing.entries == [{"path": "/workspace/pkg", "is_dir": True}]
    grep = await backend.agrep("y = 3", "/workspace")
    assert [(m["path"], m["line"]) for m in grep.matches or []] == [("/workspace/pkg/mod.py", 2)]
    glob = await backend.aglob("**/*.py", "/workspace")
    assert [m["path"] for m in glob.matches or []] == ["/workspace/pkg/mod.py"]
    done = await backend.aexecute("python3 -c 'import pkg.mod as m; print(m.y)'; echo e >&2")
    assert (done.output, done.exit_code, done.truncated) == ("3\n[stderr] e", 0, False)
    assert backend.id == "keel-sandbox:t-deep"
    up = await backend.aupload_files([("/etc/x", b"no"), ("rel.txt", b"yes")])
    assert (
        up[0].error is not None and up[0].error.startswith("invalid_path") and up[1].error is None
    )
    down = await backend.adownload_files(
        ["/workspace/rel.txt", "/workspace/none", "/workspace/pkg"]
    )
    assert [(d.content, d.error) for d in down] == [
        (b"yes", None), (None, "file_not_found"), (None, "is_directory"),
    ]  # fmt: skip
    assert not Path("/etc/x").exists()  # noqa: ASYNC240 - one stat


async def test_the_backends_sync_execute_runs_outside_the_event_loop(
    sandboxes: Sandboxes,
) -> None:
    backend = KeelSandboxBackend(sandboxes.for_thread("t-sync"))
    with pytest.raises(RuntimeError, match="aexecute"):
        backend.execute("true")
    done = await asyncio.to_thread(backend.execute, "echo sync > s.txt; cat s.txt")
    assert (done.output, done.exit_code) == ("sync", 0)
    timed = await backend.aexecute("sleep 5", timeout=1)
    assert timed.exit_code != 0 and "wall-time" in timed.output
