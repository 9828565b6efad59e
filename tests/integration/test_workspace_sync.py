"""Several hosts on one PostgreSQL database (keel.sandbox.sync): two `Sandboxes`, each with its
own workspace root and its own connection pool, stand for two machines. A file made on one host
is seen on the other and back; a command cut off mid-way leaves the last published snapshot; a
stale host's publish loses the compare-and-set; the size cap; the rows go with the thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel.errors import ConfigError, WorkspaceNotPublished
from keel.sandbox import Result
from keel.sandbox.sandboxes import Sandboxes
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from keel.storage.postgres import PostgresStorage
from keel.storage.sqlite import SqliteStorage
from tests.support.postgres import PgCluster
from tests.support.sandbox import traversable_dir

LIMITS = SandboxLimits(wall_seconds=20.0, workspace_bytes=8 << 20)
NOW = "2026-01-01T00:00:00.000000+00:00"


@dataclasses.dataclass
class Host:
    storage: PostgresStorage
    sandboxes: Sandboxes
    root: Path


@contextlib.asynccontextmanager
async def hosts(
    pg_cluster: PgCluster, sync_max_bytes: int = 1 << 20
) -> AsyncIterator[tuple[Host, Host, str]]:
    """Hosts A and B on one fresh database, and a thread that exists in it."""
    url = pg_cluster.create_database()
    made: list[Host] = []
    with traversable_dir("keel-sync-") as base:
        try:
            for name in ("a", "b"):
                storage = PostgresStorage(url, pool_size=2)
                await storage.open()
                settings = SandboxSettings(
                    root=base / name, limits=LIMITS, sync_max_bytes=sync_max_bytes
                )
                made.append(Host(storage, Sandboxes(settings, storage), base / name))
            thread_id = str(uuid.uuid4())
            async with made[0].storage.tx() as tx:
                await tx.run(
                    "INSERT INTO threads (thread_id, created_at, updated_at) VALUES (?,?,?)",
                    [thread_id, NOW, NOW],
                )
            yield made[0], made[1], thread_id
        finally:
            for host in made:
                await host.storage.close()


async def appears(path: Path) -> None:
    """Until a command in the sandbox has made `path` (bounded: 30 s)."""
    for _ in range(1500):
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the command never made {path}")


async def version(host: Host, thread_id: str) -> int:
    async with host.storage.read() as tx:
        return await tx.workspace_version(thread_id)


async def test_a_file_made_on_one_host_is_read_on_the_other_and_back(
    pg_cluster: PgCluster,
) -> None:
    async with hosts(pg_cluster) as (a, b, tid):
        done = await a.sandboxes.for_thread(tid).run("mkdir src && echo from-a > src/note")
        assert done.exit_code == 0
        assert await version(a, tid) == 1
        on_b = b.sandboxes.for_thread(tid)
        assert await on_b.aread("src/note") == b"from-a\n"
        await on_b.awrite("src/reply", "from-b")
        assert await version(b, tid) == 2
        on_a = a.sandboxes.for_thread(tid)
        assert (await on_a.run("cat src/reply")).stdout == "from-b"
        assert await on_a.als("src") == ["note", "reply"]
        # A command that changes nothing publishes nothing; a rewrite of the same size does.
        assert await version(a, tid) == 2
        await on_a.awrite("same", "1111")
        await on_a.awrite("same", "2222")
        assert await on_b.aread("same") == b"2222"
        # The sync file methods wait for the database from a thread (a sync tool runs in one),
        # and refuse, clearly, on the event loop itself.
        await asyncio.to_thread(on_b.write, "src/reply", "again")
        assert await asyncio.to_thread(on_a.read, "src/reply") == b"again"
        with pytest.raises(ConfigError, match="aread"):
            on_a.read("src/reply")


async def test_a_command_cut_off_mid_way_leaves_the_last_published_snapshot(
    pg_cluster: PgCluster,
) -> None:
    async with hosts(pg_cluster) as (a, b, tid):
        on_a = a.sandboxes.for_thread(tid)
        await on_a.run("echo 1 > f")
        task = asyncio.create_task(on_a.run("echo 2 > f; touch started; sleep 60"))
        await appears(a.root / tid / "started")  # the command is in flight
        task.cancel()  # host A goes away before its command ends: nothing more is published
        with contextlib.suppress(asyncio.CancelledError):
            await task
        on_b = b.sandboxes.for_thread(tid)
        assert await on_b.aread("f") == b"1\n"
        assert await on_b.als() == ["f"]
        assert await version(b, tid) == 1


async def test_a_stale_host_loses_the_compare_and_set(pg_cluster: PgCluster) -> None:
    async with hosts(pg_cluster) as (a, b, tid):
        on_a = a.sandboxes.for_thread(tid)
        await on_a.run("echo a > f")
        # A starts a command (restored, at version 1) and waits; B publishes version 2 meanwhile.
        slow = asyncio.create_task(
            on_a.run("touch polling; while [ ! -e go ]; do sleep 0.02; done; echo stale > f")
        )
        await appears(a.root / tid / "polling")  # A's command runs: A restored already
        await b.sandboxes.for_thread(tid).run("echo b > f")
        assert await version(b, tid) == 2
        (a.root / tid / "go").touch()
        with pytest.raises(WorkspaceNotPublished, match="no longer holds version 1") as lost:
            await slow
        assert isinstance(lost.value.result, Result) and lost.value.result.exit_code == 0
        assert await version(a, tid) == 2  # nothing overwritten
        # A's next operation takes the newer snapshot; its own change is discarded.
        assert await on_a.aread("f") == b"b\n"


async def test_over_the_cap_the_change_stays_on_its_host(pg_cluster: PgCluster) -> None:
    async with hosts(pg_cluster, sync_max_bytes=4096) as (a, b, tid):
        on_a = a.sandboxes.for_thread(tid)
        await on_a.run("echo small > f")
        with pytest.raises(WorkspaceNotPublished, match=r"over sandbox\.sync_max_bytes") as big:
            await on_a.run("head -c 10000 /dev/zero > big; echo made")
        assert isinstance(big.value.result, Result) and big.value.result.stdout == "made\n"
        assert sorted(await on_a.als()) == ["big", "f"]  # kept on host A
        assert await b.sandboxes.for_thread(tid).als() == ["f"]  # B sees the last snapshot


async def test_the_snapshot_goes_with_its_thread(pg_cluster: PgCluster) -> None:
    async with hosts(pg_cluster) as (a, b, tid):
        await a.sandboxes.for_thread(tid).run("echo x > f")
        async with a.storage.tx() as tx:
            await tx.delete_thread(tid)
            assert await tx.workspace_version(tid) == 0
        # A publish for a thread that is gone stores nothing.
        with pytest.raises(WorkspaceNotPublished):
            await b.sandboxes.for_thread(tid).run("echo y > g")
        assert await version(b, tid) == 0


async def test_sync_is_off_by_default_on_sqlite(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "keel.db")
    settings = SandboxSettings(root=tmp_path / "ws", limits=LIMITS)
    assert Sandboxes(settings, storage).sync is None
    forced = dataclasses.replace(settings, sync=True)
    assert Sandboxes(forced, storage).sync is not None


async def test_a_workspace_removed_on_a_host_is_restored_there(pg_cluster: PgCluster) -> None:
    """A host whose directory was removed (thread cleanup, an operator) does not take its empty
    new directory for the version it had: it restores, and never publishes the empty one."""
    async with hosts(pg_cluster) as (a, b, tid):
        await a.sandboxes.for_thread(tid).run("echo kept > f")
        shutil.rmtree(a.root / tid)
        on_a = a.sandboxes.for_thread(tid)
        assert await on_a.aread("f") == b"kept\n"
        a.sandboxes.remove(tid)
        assert (await a.sandboxes.for_thread(tid).run("cat f")).stdout == "kept\n"
        assert await version(b, tid) == 1
