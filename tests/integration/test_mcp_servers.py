"""keel.protocols.mcp_servers against real MCP servers (tests/graphs/mcp_probe.py, built with the
official SDK's FastMCP): one session per process shared by concurrent calls, a killed stdio
server restarted, a server lost mid-call or refusing connections is a tool error (an error
ToolMessage, never an exception), an HTTP server initialised anew once back. Keel-only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from keel.errors import ConfigError
from keel.protocols import mcp_servers
from keel.protocols.mcp_servers import McpServers
from keel.settings.mcp_servers import mcp_servers_settings
from tests.support.server import free_port

PROBE = Path(__file__).parents[1] / "graphs" / "mcp_probe.py"


def service(servers: dict[str, Any]) -> McpServers:
    return McpServers(mcp_servers_settings(servers, PROBE.parent))


async def invoke(tools: list[BaseTool], name: str, **args: Any) -> ToolMessage:
    tool = next(t for t in tools if t.name == name)
    call = {"name": name, "args": args, "id": f"c-{name}", "type": "tool_call"}
    message = await tool.ainvoke(call)
    assert isinstance(message, ToolMessage)
    return message


def text(message: ToolMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else "".join(b["text"] for b in content)  # type: ignore[index]


class HttpProbe:
    """The probe over streamable HTTP in its own process, stopped and started on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(PROBE), str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the HTTP probe did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None


@pytest.fixture
def http_probe() -> Iterator[HttpProbe]:
    probe = HttpProbe()
    try:
        yield probe
    finally:
        probe.stop()


async def test_one_stdio_session_is_shared_then_restarted_after_a_kill() -> None:
    servers = service({"probe": {"command": "python", "args": [str(PROBE)]}})
    try:
        tools = await servers.tools("probe")
        assert {t.name for t in tools} == {"pid", "echo", "exit_now", "refuse"}
        assert await servers.tools() == tools  # listed once, then the same tools
        first = await asyncio.gather(*(invoke(tools, "pid") for _ in range(3)))
        pids = {text(m) for m in first}
        assert len(pids) == 1 and servers.servers["probe"].connects == 1
        old = int(pids.pop())
        os.kill(old, signal.SIGKILL)  # between two calls: the next one restarts the server
        again = await invoke(tools, "echo", text="hi")
        assert again.status == "success" and text(again).startswith("hi (from ")
        assert int(text(again).split("from ")[1].rstrip(")")) != old
        assert servers.servers["probe"].connects == 2
        refused = await invoke(tools, "refuse", why="no")  # the server's own isError result
        assert refused.status == "error" and "refused: no" in text(refused)
    finally:
        await servers.close()


async def test_a_server_lost_mid_call_is_a_tool_error_then_restarted() -> None:
    servers = service({"probe": {"command": "python", "args": [str(PROBE)]}})
    try:
        tools = await servers.tools("probe")
        before = text(await invoke(tools, "pid"))
        lost = await invoke(tools, "exit_now")  # dies in flight; not read-only: never resent
        assert lost.status == "error"
        assert "MCP server 'probe' is unavailable" in text(lost) and "during the call" in text(lost)
        after = await invoke(tools, "pid")
        assert after.status == "success" and text(after) != before
        assert servers.servers["probe"].connects == 2  # exit_now was not sent again
    finally:
        await servers.close()
    with pytest.raises(ProcessLookupError):  # close() ended (and reaped) the server
        os.kill(int(text(after)), 0)


async def test_a_refusing_http_server_is_a_tool_error_until_it_is_back(
    http_probe: HttpProbe,
) -> None:
    servers = service({"web": {"url": http_probe.url, "timeout_seconds": 10}})
    try:
        assert await servers.tools("web") == []  # down at first use: no tools, tried again
        http_probe.start()
        tools = await servers.tools("web")
        first = await invoke(tools, "echo", text="a")
        assert first.status == "success"
        http_probe.stop()
        down = await invoke(tools, "echo", text="b")
        assert down.status == "error" and "MCP server 'web' is unavailable" in text(down)
        http_probe.start()  # a new process: the old session is unknown to it, Keel starts anew
        back = await invoke(tools, "echo", text="c")
        assert back.status == "success" and text(back).startswith("c (from ")
        assert text(back).split("from ")[1] != text(first).split("from ")[1]  # another process
    finally:
        await servers.close()


async def test_tools_outside_a_run_is_a_config_error_naming_the_section() -> None:
    with pytest.raises(ConfigError, match="mcp_servers"):
        await mcp_servers.tools("notes")
    servers = service({"probe": {"command": "python", "args": [str(PROBE)]}})
    with servers.active(), pytest.raises(ConfigError, match=r"\['nope'\] are not configured"):
        await mcp_servers.tools("nope")


def children_running(word: bytes) -> list[int]:
    """This process's children whose command line holds `word`."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                if word in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
    return found


async def test_a_server_that_never_answers_gives_no_tools_and_is_stopped() -> None:
    servers = service({"mute": {"command": "sleep", "args": ["313"], "timeout_seconds": 0.5}})
    try:
        assert await servers.tools() == []  # `initialize` unanswered within timeout_seconds
        assert children_running(b"313") == []  # the half-started server was killed
    finally:
        await servers.close()
