"""`mcp_servers` (Keel's): the MCP servers whose tools a graph may use (keel.protocols.mcp_servers).
Each named server is a local command spoken to over stdio or a streamable-HTTP URL; `env` and
`headers` values may hold `${{ env.VAR }}` templates, filled from the environment (the config's
`env` counted) when Keel connects. See docs/protocols.md "MCP tools for agents"."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keel.errors import ConfigError
from keel.settings.fields import number, section
from keel.settings.webhooks import TEMPLATE, env_reference, fill

STDIO_KEYS = {"transport", "command", "args", "env", "cwd", "timeout_seconds"}
HTTP_KEYS = {"transport", "url", "headers", "timeout_seconds"}
TRANSPORTS = {"stdio": "stdio", "streamable_http": "http", "http": "http"}
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# `command` "python"/"python3": the interpreter running Keel, which has the `mcp` SDK installed.
PYTHON = {"python", "python3"}
DEFAULT_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class StdioServer:
    """A server Keel starts as a child process (`command args...` in `cwd`, default the config
    file's directory) and speaks to over stdin/stdout. Its environment is the MCP SDK's minimal
    one (HOME, PATH, USER...) plus `env`."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # templates unresolved
    cwd: Path | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT  # connecting, and each tool call

    def resolved_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        return {
            k: fill(v, environ, "", f"mcp_servers.{self.name}.env.{k}") for k, v in self.env.items()
        }


@dataclasses.dataclass(frozen=True)
class HttpServer:
    """A server reached over MCP's streamable HTTP transport at `url`, with `headers`."""

    name: str
    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # templates unresolved
    timeout_seconds: float = DEFAULT_TIMEOUT

    def resolved_headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        return {
            k: fill(v, environ, "", f"mcp_servers.{self.name}.headers.{k}")
            for k, v in self.headers.items()
        }


McpServerSpec = StdioServer | HttpServer


def mcp_servers_settings(raw: Any, base_dir: Path) -> dict[str, McpServerSpec]:
    """`mcp_servers`: an object of server names to server objects (absent: none)."""
    if raw is None:
        return {}
    servers = section(raw, "mcp_servers")
    specs: dict[str, McpServerSpec] = {}
    for name, value in servers.items():
        if not NAME.fullmatch(name):
            raise ConfigError(
                f"mcp_servers: invalid server name {name!r} (letters, digits, '_' and '-')"
            )
        specs[name] = server_spec(name, value, base_dir)
    return specs


def server_spec(name: str, raw: Any, base_dir: Path) -> McpServerSpec:
    key = f"mcp_servers.{name}"
    data = section(raw, key)
    transport = _transport(data, key)
    if transport == "stdio":
        data = section(data, key, STDIO_KEYS)
        return StdioServer(
            name=name,
            command=_command(data["command"], key, base_dir),
            args=_strings(data.get("args", []), f"{key}.args"),
            env=_templated(data.get("env"), f"{key}.env"),
            cwd=_cwd(data.get("cwd"), key, base_dir),
            timeout_seconds=_timeout(data, key),
        )
    data = section(data, key, HTTP_KEYS)
    return HttpServer(
        name=name,
        url=_url(data["url"], key),
        headers=_templated(data.get("headers"), f"{key}.headers"),
        timeout_seconds=_timeout(data, key),
    )


def _transport(data: dict[str, Any], key: str) -> str:
    """'stdio' or 'http': from `transport` when given, else from `command` / `url`."""
    if "transport" in data:
        named = TRANSPORTS.get(data["transport"]) if isinstance(data["transport"], str) else None
        if named is None:
            raise ConfigError(
                f"{key}.transport must be one of {sorted(TRANSPORTS)}, got {data['transport']!r} "
                "(Keel speaks MCP over stdio and streamable HTTP, not the legacy SSE transport)"
            )
        missing = "command" if named == "stdio" else "url"
        if missing not in data:
            raise ConfigError(f"{key}: a {data['transport']} server needs '{missing}'")
        return named
    if ("command" in data) == ("url" in data):
        raise ConfigError(
            f"{key} needs either 'command' (a local server over stdio) or 'url' (streamable "
            "HTTP), not both"
        )
    return "stdio" if "command" in data else "http"


def _command(raw: Any, key: str, base_dir: Path) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{key}.command must be a non-empty string, got {raw!r}")
    if raw in PYTHON:
        return sys.executable
    if "/" in raw and not Path(raw).is_absolute():  # ./bin/server: beside the config file
        return str((base_dir / raw).resolve())
    return raw


def _strings(raw: Any, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise ConfigError(f"{key} must be a list of strings, got {raw!r}")
    return tuple(raw)


def _templated(raw: Any, key: str) -> dict[str, str]:
    """An object of names to strings whose `${{ env.VAR }}` templates are well formed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(f"{key} must be an object of names to strings")
    for name, value in raw.items():
        for match in TEMPLATE.finditer(value):
            env_reference(match.group(1), "", f"{key}.{name}")
    return {str(k): v for k, v in raw.items()}


def _cwd(raw: Any, key: str, base_dir: Path) -> Path:
    if raw is None:
        return base_dir
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{key}.cwd must be a directory path, got {raw!r}")
    return (base_dir / raw).resolve()


def _url(raw: Any, key: str) -> str:
    parts = urlsplit(raw) if isinstance(raw, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}.url must be an http(s):// URL, got {raw!r}")
    return str(raw)


def _timeout(data: dict[str, Any], key: str) -> float:
    return number(data.get("timeout_seconds", DEFAULT_TIMEOUT), f"{key}.timeout_seconds")


def check_environment(servers: Mapping[str, McpServerSpec], environ: Mapping[str, str]) -> None:
    """At load time (the config's `env` counted): every template resolves, else a ConfigError
    naming the server and key, before anything starts."""
    for spec in servers.values():
        if isinstance(spec, StdioServer):
            spec.resolved_env(environ)
        else:
            spec.resolved_headers(environ)
