"""Several hosts on one database: a thread's workspace is published to the database (a tar.gz,
versioned) after each operation that may change it, and restored before an operation on a host
whose copy is older (docs/sandbox.md "Several hosts").

This host's version of each workspace is kept beside the workspaces, in `<root>/.versions/<tid>`
(never inside the workspace a command sees). A publish is a compare-and-set on the version: a
host that missed a newer snapshot fails loudly instead of overwriting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
import weakref
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from keel.clock import iso
from keel.errors import ConfigError, WorkspaceNotPublished
from keel.sandbox import archive, workspaces
from keel.sandbox.uids import thread_uid
from keel.settings.sandbox import SandboxSettings
from keel.storage.base import Storage

VERSIONS = ".versions"
# A file changed this recently may change again within the same clock tick without its stat
# changing: a stamp taken then is not trusted (the next publish re-packs; see `stamp`).
RACY_NS = 100_000_000


def enabled(settings: SandboxSettings, storage: Storage) -> bool:
    """`sandbox.sync`, where "auto" (None) means: when other processes share the database."""
    return storage.shared if settings.sync is None else settings.sync


@dataclasses.dataclass(frozen=True)
class Local:
    """The snapshot this host's copy of a workspace matches: its version, its archive's digest,
    and a stamp of the files' metadata (unchanged stamp: nothing to pack)."""

    version: int = 0
    digest: str = ""
    stamp: str = "-"


class WorkspaceSync:
    def __init__(self, storage: Storage, settings: SandboxSettings) -> None:
        self.storage = storage
        self.root = settings.root
        self.max_bytes = settings.sync_max_bytes
        # One operation at a time per thread in this process (parallel tool calls of one run).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def hooks(self, thread_id: str, workspace: Path, loop: asyncio.AbstractEventLoop) -> Hooks:
        return Hooks(self, thread_id, workspace, loop)

    def lock(self, thread_id: str) -> asyncio.Lock:
        lock = self._locks.get(thread_id)
        if lock is None:
            lock = self._locks[thread_id] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ local versions
    def local(self, thread_id: str, workspace: Path) -> Local:
        """What this host's copy matches; nothing when the recorded version is of another
        directory (the workspace was removed and made again: it is empty, not that version)."""
        try:
            version, digest, stamp_, inode = self._version_file(thread_id).read_text().split()
        except (FileNotFoundError, ValueError):
            return Local()
        if int(inode) != os.stat(workspace).st_ino:
            return Local()
        return Local(int(version), digest, stamp_)

    def _save(self, thread_id: str, workspace: Path, local: Local) -> None:
        path = self._version_file(thread_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        inode = os.stat(workspace).st_ino
        tmp.write_text(f"{local.version} {local.digest} {local.stamp} {inode}\n")
        os.replace(tmp, path)

    def forget(self, thread_id: str) -> None:
        """This host no longer has the workspace (removed): the next operation restores it."""
        forget(self.root, thread_id)

    def _version_file(self, thread_id: str) -> Path:
        return version_file(self.root, thread_id)

    # ------------------------------------------------------------------ pull / push
    async def pull(self, thread_id: str, workspace: Path) -> None:
        """Restore the published snapshot when it is newer than this host's copy."""
        async with self.storage.statements() as tx:
            version = await tx.workspace_version(thread_id)
        if version <= self.local(thread_id, workspace).version:
            return
        async with self.storage.statements() as tx:
            row = await tx.get_workspace(thread_id)
        if row is None:
            return
        data: bytes = row["archive"]
        await asyncio.to_thread(replace, workspace, data)
        # No stamp: the next publish packs once to compare digests.
        self._save(thread_id, workspace, Local(int(row["version"]), _digest(data)))

    async def push(self, thread_id: str, workspace: Path, result: object = None) -> None:
        """Publish the workspace as the next version (nothing when it did not change)."""
        local = self.local(thread_id, workspace)
        now_stamp = await asyncio.to_thread(stamp, workspace)
        if now_stamp != "-" and now_stamp == local.stamp:
            return  # no file changed (a read-only command): no pack, no write
        size = await asyncio.to_thread(workspaces.usage, workspace)
        if size > self.max_bytes:
            raise WorkspaceNotPublished(
                f"the workspace ({size} bytes) is over sandbox.sync_max_bytes ({self.max_bytes}): "
                f"the change stays on this host only; another host sees version {local.version}",
                result,
            )
        data = await asyncio.to_thread(archive.pack, workspace)
        digest = _digest(data)
        if digest == local.digest:
            self._save(thread_id, workspace, dataclasses.replace(local, stamp=now_stamp))
            return
        async with self.storage.tx() as tx:
            stored = await tx.put_workspace(thread_id, local.version, data, size, iso())
        if not stored:
            raise WorkspaceNotPublished(
                f"the workspace was not published: the database no longer holds version "
                f"{local.version} (another host published a newer one, or the thread is gone); "
                "this host's change is discarded at its next operation",
                result,
            )
        self._save(thread_id, workspace, Local(local.version + 1, digest, now_stamp))


class Hooks:
    """What a synced `Sandbox` calls around its operations (keel.sandbox.SandboxHooks)."""

    def __init__(
        self, sync: WorkspaceSync, thread_id: str, workspace: Path, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.sync = sync
        self.thread_id = thread_id
        self.workspace = workspace
        self.loop = loop

    async def before(self) -> None:
        async with self.sync.lock(self.thread_id):
            await self.sync.pull(self.thread_id, self.workspace)

    async def after(self, result: object = None) -> None:
        async with self.sync.lock(self.thread_id):
            await self.sync.push(self.thread_id, self.workspace, result)

    def before_blocking(self) -> None:
        self._block(self.before())

    def after_blocking(self) -> None:
        self._block(self.after())

    def _block(self, step: Coroutine[Any, Any, None]) -> None:
        """Run `step` on the event loop from a thread (a sync node or tool runs in one)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run_coroutine_threadsafe(step, self.loop).result()
            return
        step.close()
        raise ConfigError(
            "a synced sandbox's read/write/ls cannot wait for the database on the event loop: "
            "use `await sandbox.aread/awrite/als` in async code"
        )


def replace(workspace: Path, data: bytes) -> None:
    """The workspace's contents become the archive's (extracted beside it, then swapped in)."""
    fresh = workspace.with_name(f".restore-{workspace.name}")
    old = workspace.with_name(f".old-{workspace.name}")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh.mkdir(mode=0o700)
    archive.unpack(data, fresh)
    os.chmod(fresh, 0o700)
    if os.getuid() == 0:  # the thread's commands own their files
        workspaces.chown_tree(fresh, thread_uid(workspace.name))
    os.rename(workspace, old)
    os.rename(fresh, workspace)
    shutil.rmtree(old, ignore_errors=True)


def version_file(root: Path, thread_id: str) -> Path:
    """Where this host records the version of its copy of `thread_id`'s workspace."""
    workspaces.path_for(root, thread_id)  # validates the id
    return root / VERSIONS / thread_id


def forget(root: Path, thread_id: str) -> None:
    """Drop this host's record of `thread_id`'s copy (its workspace was removed)."""
    with contextlib.suppress(FileNotFoundError):
        version_file(root, thread_id).unlink()


def stamp(workspace: Path) -> str:
    """A digest of every entry's name, type, size, mode, mtime and ctime (ctime cannot be set
    back by a command); "-" (never equal) when an entry changed too recently to be trusted."""
    h = hashlib.sha256()
    newest = 0
    for folder, dirs, files in os.walk(workspace):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(full)
                newest = max(newest, st.st_ctime_ns, st.st_mtime_ns)
                fields = (full, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                h.update(repr(fields).encode())
    if time.time_ns() - newest < RACY_NS:
        return "-"
    return h.hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
