"""`sandbox` (Keel's): where per-thread workspaces live, the limits of each sandboxed command, and
the network allow-list (off by default; docs/sandbox.md)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

from keel.errors import ConfigError
from keel.settings.fields import number, positive_int, section

LIMIT_KEYS = {
    "cpu_seconds",
    "wall_seconds",
    "memory_bytes",
    "processes",
    "open_files",
    "output_bytes",
    "file_bytes",
    "workspace_bytes",
}


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Per command: CPU seconds, wall time, address space, processes (of the sandbox's user),
    open files, bytes kept of stdout and of stderr, size of one written file; per workspace:
    its total size."""

    cpu_seconds: int = 30
    wall_seconds: float = 60.0
    memory_bytes: int = 1 << 30
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 1 << 20
    file_bytes: int = 64 << 20
    workspace_bytes: int = 256 << 20


@dataclasses.dataclass(frozen=True)
class AllowEntry:
    """`host:port` a sandboxed command may reach through Keel's proxy. `host`: a lower-case name,
    `*.suffix` (any name under it), or an IP literal (`literal`: private addresses allowed)."""

    host: str
    port: int
    literal: bool


@dataclasses.dataclass(frozen=True)
class SandboxSettings:
    """`root`: the directory holding one workspace per thread (default `.keel/workspaces` beside
    the config file). `allow`: the network allow-list; None (the default) is no network.
    `sync`: publish each workspace to the database and restore it on another host (None:
    "auto", on when the database is shared, i.e. PostgreSQL); `sync_max_bytes`: the largest
    workspace published (docs/sandbox.md "Several hosts")."""

    root: Path = Path(".keel/workspaces")
    limits: SandboxLimits = SandboxLimits()
    allow: tuple[AllowEntry, ...] | None = None
    sync: bool | None = None
    sync_max_bytes: int = 64 << 20


LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
HOST_NAME = re.compile(rf"^(\*\.)?{LABEL}(\.{LABEL})*$")


def allow_entry(raw: Any) -> AllowEntry:
    """One `host:port` of `sandbox.network.allow` (IPv6 in brackets: `[::1]:8080`)."""
    where = f"sandbox.network.allow entry {raw!r}"
    if not isinstance(raw, str) or ":" not in raw:
        raise ConfigError(f"{where} must be 'host:port'")
    host, _, port_text = raw.rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: the port must be 1..65535")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
        return AllowEntry(str(address), int(port_text), literal=True)
    except ValueError:
        if bracketed:
            raise ConfigError(f"{where}: not an IPv6 address") from None
    host = host.lower().rstrip(".")
    if not HOST_NAME.fullmatch(host):
        raise ConfigError(f"{where}: the host must be a name, '*.suffix' or an IP address")
    return AllowEntry(host, int(port_text), literal=False)


def network(raw: Any) -> tuple[AllowEntry, ...] | None:
    """`sandbox.network`: absent, null or false is no network; `{"allow": [...]}`."""
    if raw is None or raw is False:
        return None
    data = section(raw, "sandbox.network", {"allow"})
    allow = data.get("allow", [])
    if not isinstance(allow, list):
        raise ConfigError("sandbox.network.allow must be a list of 'host:port'")
    return tuple(allow_entry(item) for item in allow)


def sandbox_settings(raw: Any, base_dir: Path) -> SandboxSettings | None:
    if raw is None:
        return None
    data = section(raw, "sandbox", {"root", "network", "sync", "sync_max_bytes"} | LIMIT_KEYS)
    root = data.get("root", ".keel/workspaces")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"sandbox.root must be a directory path, got {root!r}")
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS & set(data):
        if key == "wall_seconds":
            values[key] = number(data[key], "sandbox.wall_seconds")
        else:
            values[key] = positive_int(data[key], f"sandbox.{key}")
    return SandboxSettings(
        root=(base_dir / root).resolve(),
        limits=SandboxLimits(**values),
        allow=network(data.get("network")),
        sync=_sync_mode(data.get("sync", "auto")),
        sync_max_bytes=positive_int(data.get("sync_max_bytes", 64 << 20), "sandbox.sync_max_bytes"),
    )


def _sync_mode(value: Any) -> bool | None:
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ConfigError(f'sandbox.sync must be "auto", true or false, got {value!r}')
