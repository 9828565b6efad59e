"""An MCP server for Keel's tests of `mcp_servers` (tests/integration/test_mcp_servers.py,
tests/e2e/test_mcp_tools.py): `python mcp_probe.py` speaks stdio, `python mcp_probe.py PORT`
streamable HTTP on 127.0.0.1:PORT/mcp. Its tools tell which process answered and die on demand."""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("probe", log_level="WARNING")
READ_ONLY = ToolAnnotations(readOnlyHint=True)


@server.tool(annotations=READ_ONLY)
def pid() -> int:
    """The id of the process serving these tools."""
    return os.getpid()


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """`text`, and the process that answered."""
    return f"{text} (from {os.getpid()})"


@server.tool()
def exit_now() -> str:
    """Kill this server while the call is in flight (no answer is ever sent)."""
    os._exit(3)


@server.tool()
def refuse(why: str) -> str:
    """A tool error: the server answers the call with isError."""
    raise ValueError(f"refused: {why}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        server.settings.host = "127.0.0.1"
        server.settings.port = int(sys.argv[1])
        server.run("streamable-http")
    else:
        server.run("stdio")
