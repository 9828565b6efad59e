"""Workspaces' end of life: removed once the transaction deleting their thread commits (a hook
on the storage, `Storage.on_thread_deleted`), and an orphan sweep for the rest.

Removal first renames the workspace into `<root>/.trash/` (atomic, so the thread's path is free
at once and two processes never remove the same tree twice), then deletes the tree in a
background thread. A workspace is orphaned when the process dies between the commit and the
rename, when another machine deleted the thread (each machine has its own root), or when a
thread was deleted by a process without a sandbox section: `sweep_orphans` removes workspaces
whose thread no longer exists and that have not changed for `ORPHAN_GRACE_SECONDS`, and what a
crash left in the trash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from keel.sandbox import sync
from keel.sandbox.workspaces import THREAD_ID, path_for

log = logging.getLogger("keel.sandbox")
TRASH = ".trash"  # never a thread id (those start with a letter or digit)
# A workspace without a thread is left alone this long after its last change: a thread being
# created with its id, or a workspace made before its thread row, is not taken away.
ORPHAN_GRACE_SECONDS = 3600.0
BATCH = 200  # workspaces checked against the database per query

Existing = Callable[[list[str]], Awaitable[set[str]]]


def discard(root: Path, thread_id: str) -> bool:
    """Move the workspace of `thread_id` to the trash and delete it in the background; False
    when it has none (or another process took it first)."""
    source = path_for(root, thread_id)
    if not os.path.lexists(source):
        return False
    trash = root / TRASH
    trash.mkdir(mode=0o700, exist_ok=True)
    target = trash / f"{thread_id}.{uuid.uuid4().hex}"
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return False
    try:
        asyncio.get_running_loop().run_in_executor(None, rmtree, target)
    except RuntimeError:  # no event loop: here and now
        rmtree(target)
    return True


def rmtree(path: Path | str) -> None:
    """Delete a tree. Keel as root deletes anything; otherwise an entry a command made
    read-only (`chmod -w` on its own directories) gets its directory made writable and is
    tried again (only files of Keel's own user can be touched that way)."""

    def retry(func: Callable[..., object], failed: str, _info: object) -> None:
        if os.getuid() == 0:
            return
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            if func in (os.rmdir, os.unlink):
                func(failed)
            elif os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)  # could not be listed
                rmtree(failed)

    shutil.rmtree(path, onerror=retry)


def _age(path: Path, now: float) -> float:
    try:
        return now - os.lstat(path).st_mtime
    except FileNotFoundError:
        return -1.0


def candidates(root: Path, now: float, grace: float) -> list[str]:
    """Thread ids of the workspaces under `root` unchanged for at least `grace` seconds."""
    if not root.is_dir():
        return []
    names = (e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    return sorted(n for n in names if THREAD_ID.fullmatch(n) and _age(root / n, now) >= grace)


async def sweep_orphans(
    root: Path, existing: Existing, now: float, grace: float = ORPHAN_GRACE_SECONDS
) -> int:
    """Remove the workspaces whose thread is gone (unchanged for `grace` seconds) and what the
    trash holds from before; the number of workspaces removed."""
    removed = 0
    old = candidates(root, now, grace)
    for start in range(0, len(old), BATCH):
        batch = old[start : start + BATCH]
        alive = await existing(batch)
        for thread_id in batch:
            if thread_id not in alive and discard(root, thread_id):
                removed += 1
                sync.forget(root, thread_id)
    trash = root / TRASH
    if trash.is_dir():
        for entry in os.scandir(trash):
            if _age(Path(entry.path), now) >= grace:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(rmtree, entry.path)
    if removed:
        log.info("removed %d orphaned workspaces under %s", removed, root)
    return removed
