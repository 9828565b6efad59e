"""The `mcp_servers` config section (keel/settings/mcp_servers.py, Keel's own: the reference has
none): stdio and streamable-HTTP servers read, `${{ env.VAR }}` templates checked at load and
filled when connecting, unknown keys and bad values refused with a message naming the key."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.errors import ConfigError
from keel.protocols.mcp_servers import connection
from keel.settings import load_settings
from keel.settings.mcp_servers import HttpServer, StdioServer, mcp_servers_settings


def write(tmp_path: Path, servers: Any, env: dict[str, str] | None = None) -> Path:
    path = tmp_path / "keel.json"
    path.write_text(json.dumps({"graphs": {}, "env": env or {}, "mcp_servers": servers}))
    return path


def test_stdio_and_http_servers_are_read(tmp_path: Path) -> None:
    servers = {
        "notes": {
            "command": "python",
            "args": ["./mcp/notes_server.py"],
            "env": {"TOKEN": "${{ env.NOTES_TOKEN }}", "MODE": "ro"},
            "cwd": "sub",
        },
        "search": {
            "url": "https://mcp.example.com/mcp",
            "headers": {"Authorization": "Bearer ${{ env.SEARCH_KEY }}"},
            "timeout_seconds": 5,
        },
        "tool": {"transport": "stdio", "command": "./bin/server"},
    }
    env = {"NOTES_TOKEN": "n-1", "SEARCH_KEY": "s-2"}
    specs = load_settings(write(tmp_path, servers, env)).mcp_servers
    notes, search, tool = specs["notes"], specs["search"], specs["tool"]
    assert isinstance(notes, StdioServer) and isinstance(search, HttpServer)
    assert isinstance(tool, StdioServer)
    assert notes.command == sys.executable  # "python": the interpreter running Keel
    assert notes.args == ("./mcp/notes_server.py",) and notes.cwd == tmp_path / "sub"
    assert tool.command == str(tmp_path / "bin" / "server") and tool.cwd == tmp_path
    assert search.timeout_seconds == 5.0
    stdio = connection(notes, env)
    assert stdio["transport"] == "stdio" and stdio.get("env") == {"TOKEN": "n-1", "MODE": "ro"}
    http = connection(search, env)
    assert http["transport"] == "streamable_http"
    assert http.get("headers") == {"Authorization": "Bearer s-2"}


def test_no_section_is_no_servers(tmp_path: Path) -> None:
    path = tmp_path / "keel.json"
    path.write_text(json.dumps({"graphs": {}}))
    assert load_settings(path).mcp_servers == {}


def test_an_unset_variable_is_refused_at_load(tmp_path: Path) -> None:
    servers = {"s": {"url": "http://127.0.0.1:1/mcp", "headers": {"X": "${{ env.KEEL_NO_SUCH }}"}}}
    with pytest.raises(ConfigError, match=r"mcp_servers\.s\.headers\.X.*KEEL_NO_SUCH"):
        load_settings(write(tmp_path, servers))


@pytest.mark.parametrize(
    ("servers", "match"),
    [
        ([], "'mcp_servers' must be an object"),
        ({"bad name": {"command": "x"}}, "invalid server name"),
        ({"s": "python server.py"}, "'mcp_servers.s' must be an object"),
        ({"s": {}}, "needs either 'command'"),
        ({"s": {"command": "x", "url": "http://h/mcp"}}, "needs either 'command'"),
        ({"s": {"command": "x", "headers": {}}}, r"keys not supported: \['headers'\]"),
        ({"s": {"url": "http://h/mcp", "args": []}}, r"keys not supported: \['args'\]"),
        ({"s": {"command": "x", "restart": True}}, r"keys not supported: \['restart'\]"),
        ({"s": {"transport": "sse", "url": "http://h/sse"}}, "legacy SSE"),
        ({"s": {"transport": "stdio", "url": "http://h/mcp"}}, "needs 'command'"),
        ({"s": {"command": ""}}, "command must be a non-empty string"),
        ({"s": {"command": "x", "args": "a b"}}, "args must be a list of strings"),
        ({"s": {"command": "x", "env": {"A": 1}}}, "env must be an object of names to strings"),
        ({"s": {"command": "x", "env": {"A": "${{ secrets.A }}"}}}, "only"),
        ({"s": {"url": "ftp://h/mcp"}}, r"url must be an http\(s\):// URL"),
        ({"s": {"url": "http:///mcp"}}, r"url must be an http\(s\):// URL"),
        ({"s": {"url": "http://h/mcp", "timeout_seconds": 0}}, "timeout_seconds must be"),
    ],
)
def test_bad_servers_are_refused_naming_the_key(servers: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mcp_servers_settings(servers, Path("/srv"))
