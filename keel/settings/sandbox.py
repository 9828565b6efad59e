"""`sandbox` (Keel's): where per-thread workspaces live and the limits of each sandboxed command.
Network is off; there is no allow-list yet (docs/sandbox.md)."""

from __future__ import annotations

import dataclasses
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
class SandboxSettings:
    """`root`: the directory holding one workspace per thread (default `.keel/workspaces` beside
    the config file). `sync`: publish each workspace to the database and restore it on another
    host (None: "auto", on when the database is shared, i.e. PostgreSQL); `sync_max_bytes`: the
    largest workspace published (docs/sandbox.md "Several hosts")."""

    root: Path = Path(".keel/workspaces")
    limits: SandboxLimits = SandboxLimits()
    sync: bool | None = None
    sync_max_bytes: int = 64 << 20


def sandbox_settings(raw: Any, base_dir: Path) -> SandboxSettings | None:
    if raw is None:
        return None
    data = section(raw, "sandbox", {"root", "sync", "sync_max_bytes"} | LIMIT_KEYS)
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
        sync=_sync_mode(data.get("sync", "auto")),
        sync_max_bytes=positive_int(data.get("sync_max_bytes", 64 << 20), "sandbox.sync_max_bytes"),
    )


def _sync_mode(value: Any) -> bool | None:
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ConfigError(f'sandbox.sync must be "auto", true or false, got {value!r}')
