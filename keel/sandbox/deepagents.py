"""A deepagents backend over Keel's sandbox: `create_deep_agent(backend=KeelSandboxBackend())`
gives the agent its file tools (ls, read_file, write_file, edit_file, glob, grep) and `execute`
in the current thread's workspace, mounted at /workspace inside the sandbox (docs/sandbox.md).

Needs the `deepagents` extra (`pip install 'keel-runtime[deepagents]'`); this is the only Keel
module that imports deepagents. One instance serves every thread: each call resolves the
sandbox of the run executing it (`keel.sandbox.current()`)."""

from __future__ import annotations

import asyncio

from deepagents.backends.protocol import (
    ExecuteResponse,
    FileDownloadResponse,
    FileUploadResponse,
)
from deepagents.backends.sandbox import BaseSandbox

from keel.errors import InvalidInput, KeelError, NotFound
from keel.sandbox import Result, Sandbox, current
from keel.sandbox.bubblewrap import WORKSPACE

__all__ = ["WORKSPACE", "KeelSandboxBackend"]


class KeelSandboxBackend(BaseSandbox):
    """deepagents' `BaseSandbox` executing in Keel's sandbox of the current thread. Paths are
    the sandbox's: absolute under /workspace (or relative to it); anything else is refused.
    `sandbox`: a fixed sandbox instead of the current thread's (tests, scripts)."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._fixed = sandbox

    def _sandbox(self) -> Sandbox:
        return self._fixed if self._fixed is not None else current()

    @property
    def id(self) -> str:
        return f"keel-sandbox:{self._sandbox().workspace.name}"

    async def aexecute(
        self,
        command: str,
        *,
        timeout: int | None = None,  # noqa: ASYNC109 - the command's wall time, in the sandbox
    ) -> ExecuteResponse:
        result = await self._sandbox().run(command, wall_seconds=timeout)
        return _response(result)

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """The sync path (a graph invoked synchronously): the command runs to its end in a loop
        of this thread's own. Inside a running event loop use `aexecute`: never a nested loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            sandbox = self._sandbox()  # resolved here, in the caller's context
            return asyncio.run(_run(sandbox, command, timeout))
        raise RuntimeError("KeelSandboxBackend.execute inside an event loop: use aexecute")

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        sandbox = self._sandbox()
        return [FileUploadResponse(path, _upload(sandbox, path, data)) for path, data in files]

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        sandbox = self._sandbox()
        return [_download(sandbox, path) for path in paths]

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return await asyncio.to_thread(self.upload_files, files)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return await asyncio.to_thread(self.download_files, paths)


async def _run(sandbox: Sandbox, command: str, wall: int | None) -> ExecuteResponse:
    return _response(await sandbox.run(command, wall_seconds=wall))


def _response(result: Result) -> ExecuteResponse:
    """stdout, then stderr's lines prefixed `[stderr]` (as deepagents' local shell backend),
    then a note when the command was killed at the wall time."""
    parts = [result.stdout.rstrip("\n")] if result.stdout else []
    if result.stderr:
        parts += [f"[stderr] {line}" for line in result.stderr.rstrip("\n").split("\n")]
    if result.timed_out:
        parts.append("[keel: killed at the sandbox's wall-time limit]")
    return ExecuteResponse("\n".join(parts), result.exit_code, result.truncated)


def _relative(path: str) -> str:
    """A sandbox path as a workspace-relative one; InvalidInput outside /workspace."""
    if path == WORKSPACE or path == WORKSPACE + "/":
        return "."
    if path.startswith(WORKSPACE + "/"):
        return path[len(WORKSPACE) + 1 :]
    if path.startswith("/"):
        raise InvalidInput(f"only files under {WORKSPACE} can be written or read: {path!r}")
    return path


def _upload(sandbox: Sandbox, path: str, data: bytes) -> str | None:
    try:
        sandbox.write(_relative(path), data)
    except NotFound:
        return "file_not_found"  # its directory is missing
    except InvalidInput as exc:
        return f"invalid_path: {exc}"
    except KeelError as exc:  # over the workspace's quota
        return str(exc)
    return None


def _download(sandbox: Sandbox, path: str) -> FileDownloadResponse:
    try:
        return FileDownloadResponse(path, sandbox.read(_relative(path)))
    except NotFound:
        return FileDownloadResponse(path, error="file_not_found")
    except IsADirectoryError:
        return FileDownloadResponse(path, error="is_directory")
    except InvalidInput as exc:
        return FileDownloadResponse(path, error=f"invalid_path: {exc}")
