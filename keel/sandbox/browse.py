"""Reading a workspace from the host, for `GET /threads/{tid}/workspace[/{path}]`: one
directory's entries, and a file opened for streaming. Paths go through `Sandbox._open` (one
component at a time, O_NOFOLLOW): absolute paths, `..`, NUL and symlinks on the way are refused."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import BadRequest, InvalidInput
from keel.sandbox import Sandbox, workspaces
from keel.settings.sandbox import SandboxSettings

if TYPE_CHECKING:
    from keel.sandbox.sandboxes import Sandboxes

MAX_ENTRIES = 10_000  # entries listed per directory (then `truncated`)
CHUNK = 64 << 10  # bytes read at a time when streaming a file


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def normalized(path: str) -> str:
    """`path` as listed back: relative, `/`-separated, no `.` parts ("" for the root)."""
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def listing(sandbox: Sandbox, path: str) -> dict[str, Any]:
    """`{path, entries: [{name, path, type, size, modified_at}], truncated}`, sorted by name;
    `type` is file, dir, symlink (never followed) or other; `size` is null for a directory."""
    fd = sandbox._open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = sorted(os.listdir(fd))
        base = normalized(path)
        entries = []
        for name in names[:MAX_ENTRIES]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            kind = _kind(st.st_mode)
            entries.append({
                "name": name,
                "path": f"{base}/{name}" if base else name,
                "type": kind,
                "size": None if kind == "dir" else st.st_size,
                "modified_at": clock.iso(st.st_mtime),
            })  # fmt: skip
    finally:
        os.close(fd)
    return {"path": base, "entries": entries, "truncated": len(names) > MAX_ENTRIES}


def open_file(sandbox: Sandbox, path: str) -> tuple[int, int]:
    """`path` opened for reading, with its size; InvalidInput unless a regular file (a
    directory, a FIFO: opened non-blocking, so a FIFO never hangs the server)."""
    if not normalized(path):
        raise InvalidInput("a workspace path names a file; list the workspace instead")
    fd = sandbox._open(path, os.O_RDONLY | os.O_NONBLOCK)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "a directory: list it with ?path=" if stat.S_ISDIR(st.st_mode) else "not a file"
        raise BadRequest(f"{path!r} is {what}")
    os.set_blocking(fd, True)
    return fd, st.st_size


def chunks(fd: int, size: int) -> Iterator[bytes]:
    """The file's first `size` bytes (its size when opened: the Content-Length sent), `CHUNK`
    at a time; `fd` closed at the end (or when abandoned)."""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while size > 0 and (data := f.read(min(CHUNK, size))):
            size -= len(data)
            yield data


async def catch_up(sandboxes: Sandboxes, thread_id: str) -> None:
    """Several hosts (`sandbox.sync`): this host's copy brought up to the snapshot published in
    the database, when there is one (no snapshot: nothing made, a GET creates no workspace)."""
    if sandboxes.sync is None:
        return
    async with sandboxes.storage.statements() as tx:
        if await tx.workspace_version(thread_id) == 0:
            return
    await sandboxes.for_thread(thread_id).hooks.before()


def existing(settings: SandboxSettings, thread_id: str) -> Sandbox | None:
    """The thread's sandbox if its workspace exists (a read never creates one)."""
    path = workspaces.path_for(settings.root, thread_id)
    return Sandbox(path, settings) if path.is_dir() else None
