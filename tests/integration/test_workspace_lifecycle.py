"""Workspaces' end of life on both backends (keel.sandbox.lifecycle): removed only once the
deleting transaction commits (DELETE, the TTL sweep, a stateless run's temporary thread), kept
on a rollback, and the orphan sweep for a workspace whose removal never happened (a crash, or
another host's copy on PostgreSQL)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from keel import clock
from keel.retention.sweeps import Sweeper
from keel.sandbox import browse, lifecycle
from keel.sandbox.sandboxes import Sandboxes
from keel.sandbox.sync import VERSIONS
from keel.settings.sandbox import SandboxSettings
from keel.threads import ThreadService
from tests.integration.test_worker import Rig, rig
from tests.integration.test_workspace_sync import hosts
from tests.support.gate import Gate
from tests.support.postgres import PgCluster
from tests.support.sandbox import traversable_dir

MINUTE = 60.0


@pytest.fixture
def root() -> Iterator[Path]:
    with traversable_dir("keel-life-") as base:
        yield base / "workspaces"


@contextlib.asynccontextmanager
async def rigged(database_url: str, root: Path) -> AsyncIterator[tuple[Rig, Sandboxes, Sweeper]]:
    async with rig(database_url) as r:
        settings = SandboxSettings(root=root)
        r.settings.sandbox = settings
        await r.pool.start()
        yield r, Sandboxes(settings, r.storage), Sweeper(r.storage, r.settings)


async def thread_with_files(r: Rig, sandboxes: Sandboxes, **data: object) -> tuple[str, Path]:
    thread_id = str(uuid.uuid4())
    await ThreadService(r.storage).create({"thread_id": thread_id, **data})
    sb = sandboxes.for_thread(thread_id)
    await sb.awrite("notes.txt", "kept until the thread goes")  # published too, on PostgreSQL
    return thread_id, sb.workspace


async def test_a_rolled_back_deletion_keeps_the_workspace_a_committed_one_removes_it(
    database_url: str, root: Path
) -> None:
    async with rigged(database_url, root) as (r, sandboxes, _):
        thread_id, workspace = await thread_with_files(r, sandboxes)
        with pytest.raises(RuntimeError):
            async with r.storage.tx() as tx:
                await tx.delete_thread(thread_id)
                raise RuntimeError("rolled back")
        assert (workspace / "notes.txt").exists()
        await ThreadService(r.storage).delete(thread_id, r.runs.cancel)
        assert not workspace.exists()  # moved to the trash before DELETE returns


async def test_the_ttl_sweep_removes_the_workspace_of_a_deleted_thread(
    database_url: str, root: Path
) -> None:
    async with rigged(database_url, root) as (r, sandboxes, sweeper):
        ttl = {"ttl": 10, "strategy": "delete"}
        _, workspace = await thread_with_files(r, sandboxes, ttl=ttl)
        await sweeper.sweep(clock.now() + 9 * MINUTE)
        assert workspace.exists()
        assert (await sweeper.sweep(clock.now() + 11 * MINUTE)).threads_deleted == 1
        assert not workspace.exists()


async def test_a_stateless_runs_temporary_workspace_goes_with_its_thread(
    database_url: str, root: Path, gate: Gate
) -> None:
    async with rigged(database_url, root) as (r, sandboxes, _):
        body = {"assistant_id": "slow", "input": {"delay": 0.01}, "config": gate.config}
        run = await r.runs.create(body, None)
        workspace = sandboxes.for_thread(run["thread_id"]).workspace  # while the run is held
        gate.open()
        await r.wait_status(run["run_id"], "success")
        assert not workspace.exists()


async def test_the_orphan_sweep_removes_old_workspaces_without_a_thread(
    database_url: str, root: Path
) -> None:
    """A crash between the commit and the removal leaves the workspace: the sweeper takes it
    once it is older than the grace period, never a live thread's, never a fresh one."""
    async with rigged(database_url, root) as (r, sandboxes, sweeper):
        _, live_ws = await thread_with_files(r, sandboxes)
        orphan = str(uuid.uuid4())
        orphan_ws = sandboxes.for_thread(orphan).workspace  # no thread row: as after a crash
        (root / lifecycle.TRASH / "left-by-a-crash").mkdir(parents=True)
        await sweeper.sweep(clock.now())
        assert orphan_ws.exists()  # within the grace period
        await sweeper.sweep(clock.now() + lifecycle.ORPHAN_GRACE_SECONDS + 1)
        assert not orphan_ws.exists() and live_ws.exists()
        assert not (root / lifecycle.TRASH / "left-by-a-crash").exists()


async def test_another_hosts_copy_is_read_fresh_and_swept_once_its_thread_is_gone(
    pg_cluster: PgCluster,
) -> None:
    """Several hosts (keel.sandbox.sync): the workspace routes on host B first take the snapshot
    host A published; after A deletes the thread, B's copy and its version record are B's
    orphans, removed by B's sweep."""
    async with hosts(pg_cluster) as (a, b, thread_id):
        settings_b = b.sandboxes.settings
        await browse.catch_up(b.sandboxes, thread_id)  # nothing published yet: nothing made
        assert browse.existing(settings_b, thread_id) is None
        await a.sandboxes.for_thread(thread_id).awrite("made-on-a.txt", "from host a")
        await browse.catch_up(b.sandboxes, thread_id)
        seen = browse.existing(settings_b, thread_id)
        assert seen is not None
        assert [e["name"] for e in browse.listing(seen, "")["entries"]] == ["made-on-a.txt"]
        assert (b.root / VERSIONS / thread_id).exists()
        async with a.storage.tx() as tx:
            await tx.delete_thread(thread_id)
        assert not (a.root / thread_id).exists() and (b.root / thread_id).exists()

        async def existing(ids: list[str]) -> set[str]:
            async with b.storage.read() as tx:
                return await tx.existing_threads(ids)

        later = clock.now() + lifecycle.ORPHAN_GRACE_SECONDS + 1
        assert await lifecycle.sweep_orphans(b.root, existing, later) == 1
        assert not (b.root / thread_id).exists()
        assert not (b.root / VERSIONS / thread_id).exists()
