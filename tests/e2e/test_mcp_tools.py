"""The notes example (examples/agents/notes.py) end to end through the SDK, on both backends: its
tools come from the stdio MCP server examples/mcp/notes_server.py, configured in `mcp_servers`.
The server is started on first use and shared by the runs; killed, it is restarted by the next
run; unable to start, the run still succeeds and the agent reports the tool error. Keel-only:
the reference has no `mcp_servers` section, so this module is not run against it."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Client
from tests.support.configured import serve_keel
from tests.support.reference import ROOT
from tests.support.server import KeelServer

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel's own config (mcp_servers)")
    workdir = tmp_path_factory.mktemp(f"mcp-tools-{backend}")
    # A copy of the example's server: a test removes it to make the server fail to start.
    shutil.copy(EXAMPLES / "mcp" / "notes_server.py", workdir / "notes_server.py")
    config = {
        "graphs": {"notes": f"{EXAMPLES / 'agents' / 'notes.py'}:make_graph"},
        "mcp_servers": {"notes": {"command": "python", "args": ["notes_server.py"]}},
    }
    yield from serve_keel(backend, request, workdir, config, env={"KEEL_MODEL": ""})


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def notes_servers(server: KeelServer) -> list[int]:
    """The pids of the notes servers Keel's process has started (its children running one)."""
    assert server.proc is not None
    found = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"notes_server.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
    return found


async def test_the_agent_uses_the_notebook_over_mcp(client: Client, server: KeelServer) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "notes", input=ask("remember buy milk"))
    tools = [(m["name"], m["status"]) for m in out["messages"] if m["type"] == "tool"]
    assert tools == [("add_note", "success"), ("list_notes", "success")]
    assert out["messages"][-1]["content"].endswith("1. buy milk")
    [pid] = notes_servers(server)  # one server for the process, shared by the next runs
    out = await client.runs.wait(None, "notes", input=ask("remember call Ana"))
    assert "1. buy milk\n2. call Ana" in out["messages"][-1]["content"]
    assert notes_servers(server) == [pid]


async def test_a_killed_server_is_restarted_by_the_next_run(
    client: Client, server: KeelServer
) -> None:
    await client.runs.wait(None, "notes", input=ask("remember before"))
    [pid] = notes_servers(server)
    os.kill(pid, signal.SIGKILL)
    # list_notes is read-only: resent on a new server even if the kill is noticed mid-call.
    out = await client.runs.wait(None, "notes", input=ask("what do I have?"))
    assert out["messages"][-1]["content"] == "Your notes:\n(no notes)"  # a new, empty notebook
    assert notes_servers(server) not in ([], [pid])


async def test_a_server_that_cannot_start_is_a_tool_error_not_a_failed_run(
    client: Client, server: KeelServer
) -> None:
    await client.runs.wait(None, "notes", input=ask("what do I have?"))  # listed and running
    script = server.workdir / "notes_server.py"
    script.rename(script.with_suffix(".off"))
    try:
        for pid in notes_servers(server):
            os.kill(pid, signal.SIGKILL)
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "notes", input=ask("remember nothing works"))
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        state = await client.threads.get_state(tid)
        [tool] = [m for m in state["values"]["messages"] if m["type"] == "tool"]
        assert tool["status"] == "error" and "MCP server 'notes' is unavailable" in tool["content"]
        reply = state["values"]["messages"][-1]["content"]
        assert reply.startswith("I could not use the notebook: MCP server 'notes' is unavailable")
    finally:
        script.with_suffix(".off").rename(script)
    out = await client.runs.wait(None, "notes", input=ask("remember it works again"))
    assert out["messages"][-1]["content"].endswith("1. it works again")
