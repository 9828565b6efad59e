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
    the config file)."""

    root: Path = Path(".keel/workspaces")
    limits: SandboxLimits = SandboxLimits()


def sandbox_settings(raw: Any, base_dir: Path) -> SandboxSettings | None:
    if raw is None:
        return None
    data = section(raw, "sandbox", {"root"} | LIMIT_KEYS)
    root = data.get("root", ".keel/workspaces")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"sandbox.root must be a directory path, got {root!r}")
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS & set(data):
        if key == "wall_seconds":
            values[key] = number(data[key], "sandbox.wall_seconds")
        else:
            values[key] = positive_int(data[key], f"sandbox.{key}")
    return SandboxSettings(root=(base_dir / root).resolve(), limits=SandboxLimits(**values))
