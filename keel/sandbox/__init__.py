"""Sandboxed code execution per thread: `for_thread(thread_id, settings)` gives a `Sandbox` whose
commands run under bubblewrap in the thread's workspace (docs/sandbox.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from keel.errors import InvalidInput, NotFound, PayloadTooLarge, SandboxUnavailable
from keel.sandbox import bubblewrap, quota, seccomp, workspaces
from keel.sandbox.bubblewrap import Result, bwrap_path
from keel.sandbox.uids import thread_uid
from keel.settings.sandbox import SandboxSettings

__all__ = ["Result", "Sandbox", "SandboxHooks", "check_available", "current", "for_thread"]


def current(config: Any = None) -> Sandbox:
    """The sandbox of the thread whose run is executing (inside a graph node or tool, in a run
    executed by Keel with a `sandbox` section); `ConfigError` elsewhere. `config`: the node's
    RunnableConfig, else LangGraph's current one."""
    from keel.sandbox.sandboxes import current as resolve  # sandboxes imports this module

    return resolve(config)


def check_available() -> None:
    """Raise SandboxUnavailable unless bubblewrap can start a sandbox here (run once at
    start-up when the `sandbox` section is configured)."""
    fd = seccomp.filter_fd()  # the filter too: a kernel without seccomp refuses to start
    probe = [bwrap_path(), "--unshare-all", "--ro-bind", "/", "/", "--seccomp", str(fd)]
    try:
        done = subprocess.run(
            [*probe, "--", "true"], capture_output=True, timeout=30, check=False, pass_fds=(fd,)
        )
    finally:
        os.close(fd)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here: {reason}")


class SandboxHooks(Protocol):
    """Called around a sandbox's operations: `before` each, `after` each that may change the
    workspace (keel.sandbox.sync: several hosts). The `_blocking` pair serves the sync file
    methods, called from a thread."""

    async def before(self) -> None: ...
    async def after(self, result: object = None) -> None: ...
    def before_blocking(self) -> None: ...
    def after_blocking(self) -> None: ...


class NoHooks:
    """One host (no sync): nothing happens around an operation."""

    async def before(self) -> None:
        return None

    async def after(self, result: object = None) -> None:
        return None

    def before_blocking(self) -> None:
        return None

    def after_blocking(self) -> None:
        return None


class Sandbox:
    """The workspace of one thread, and commands run inside it."""

    def __init__(
        self, workspace: Path, settings: SandboxSettings, hooks: SandboxHooks | None = None
    ) -> None:
        self.workspace = workspace
        self.settings = settings
        self.hooks: SandboxHooks = hooks or NoHooks()

    async def run(self, cmd: str | list[str], *, wall_seconds: float | None = None) -> Result:
        """`cmd` (a shell string, or an argv) in a fresh sandbox; refused over the quota.
        `wall_seconds` shortens the configured wall time (never lengthens it)."""
        await self.hooks.before()
        await asyncio.to_thread(self._check_quota, 0)  # a walk of the workspace: off the loop
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        limits = self.settings.limits
        if wall_seconds is not None and 0 < wall_seconds < limits.wall_seconds:
            limits = dataclasses.replace(limits, wall_seconds=wall_seconds)
        watch = quota.watcher(self.workspace, limits.workspace_bytes)
        result = await bubblewrap.run(
            self.workspace, argv, limits, allow=self.settings.allow, watch=watch
        )
        await self.hooks.after(result)
        return result

    def read(self, path: str) -> bytes:
        self.hooks.before_blocking()
        return self._read(path)

    def write(self, path: str, data: bytes | str) -> None:
        self.hooks.before_blocking()
        self._write(path, data)
        self.hooks.after_blocking()

    def ls(self, path: str = ".") -> list[str]:
        self.hooks.before_blocking()
        return self._ls(path)

    async def aread(self, path: str) -> bytes:
        await self.hooks.before()
        return await asyncio.to_thread(self._read, path)

    async def awrite(self, path: str, data: bytes | str) -> None:
        await self.hooks.before()
        await asyncio.to_thread(self._write, path, data)
        await self.hooks.after()

    async def als(self, path: str = ".") -> list[str]:
        await self.hooks.before()
        return await asyncio.to_thread(self._ls, path)

    def _read(self, path: str) -> bytes:
        fd = self._open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _write(self, path: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._check_quota(len(raw))
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if os.getuid() == 0:
                uid = thread_uid(self.workspace.name)
                os.fchown(f.fileno(), uid, uid)

    def _ls(self, path: str) -> list[str]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def _open(self, path: str, flags: int) -> int:
        """`path` opened inside the workspace, one component at a time with O_NOFOLLOW: an
        absolute path, `..` or a symlink anywhere on the way is refused."""
        parts = _relative_parts(path)
        fd = os.open(self.workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                step = flags if last else os.O_RDONLY | os.O_DIRECTORY
                nxt = _open_at(fd, name, step, path)
                os.close(fd)
                fd = nxt
            if flags & os.O_DIRECTORY and not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise InvalidInput(f"not a directory: {path!r}")
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _check_quota(self, adding: int) -> None:
        quota = self.settings.limits.workspace_bytes
        if workspaces.usage(self.workspace) + adding > quota:
            raise PayloadTooLarge(f"the thread's workspace is over its quota of {quota} bytes")


def _relative_parts(path: str) -> list[str]:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\x00" in path:
        raise InvalidInput(f"workspace paths are relative, without '..': {path!r}")
    return [p for p in pure.parts if p != "."]


def _open_at(dir_fd: int, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        raise NotFound(f"no such file in the workspace: {path!r}") from None
    except (OSError, NotADirectoryError) as exc:  # ELOOP: a symlink
        raise InvalidInput(f"cannot open {path!r} in the workspace: {exc.strerror}") from None


def for_thread(thread_id: str, settings: SandboxSettings) -> Sandbox:
    """The sandbox of `thread_id`: its workspace under `settings.root`, created when missing."""
    return Sandbox(workspaces.ensure(settings.root, thread_id), settings)
