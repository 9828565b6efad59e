"""One directory per thread under the configured root, owned by the sandbox's user; its size
checked against the quota."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from keel.errors import InvalidInput
from keel.sandbox.uids import thread_uid

THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def path_for(root: Path, thread_id: str) -> Path:
    """The workspace directory of `thread_id` (validated: no separators, no dot names)."""
    if not THREAD_ID.fullmatch(thread_id) or ".." in thread_id:
        raise InvalidInput(f"invalid thread id for a workspace: {thread_id!r}")
    return root / thread_id


def ensure(root: Path, thread_id: str) -> Path:
    """The workspace, created (0700, owned by the thread's uid when Keel runs as root; an
    existing one owned by another uid, e.g. 65534 before per-thread uids, is handed over)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # others may traverse to their own workspace, never list
    path = path_for(root, thread_id)
    path.mkdir(mode=0o700, exist_ok=True)
    if os.getuid() == 0:
        uid = thread_uid(thread_id)
        if os.lstat(path).st_uid != uid:
            chown_tree(path, uid)
    return path


def chown_tree(path: Path, uid: int) -> None:
    """`path` and everything under it owned by `uid`, walked by descriptor (os.fwalk) so a
    directory swapped for a symlink by a running command cannot lead the chown out."""
    os.chown(path, uid, uid, follow_symlinks=False)
    for _folder, dirs, files, dir_fd in os.fwalk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)


def usage(path: Path) -> int:
    """Bytes used by the files under `path`. `os.fwalk` opens each directory relative to its
    parent without following symlinks: a command swapping a directory for a symlink while it
    is walked cannot send the walk outside the workspace."""
    total = 0
    for _folder, _dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    return total
