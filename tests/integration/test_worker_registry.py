"""The worker registry (keel.worker.registry) on both dialects: a pool that executes runs writes
its row at start, its heartbeat refreshes `seen_at`, a clean stop deletes the row; a
registration prunes rows of workers gone long ago (SQLite: every other row); a row whose
`seen_at` is old is reported not alive; the leases listed are the running runs a scope sees."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from keel import clock
from keel.assistants import ensure_system_assistants
from keel.graphs import GraphRegistry
from keel.runs import RunService
from keel.settings import load_settings
from keel.storage import make_storage
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import StreamHub
from keel.worker import WorkerPool
from keel.worker.registry import PRUNE_AFTER, workers_view
from tests.conftest import GRAPHS_CONFIG


@contextlib.asynccontextmanager
async def pool_on(database_url: str, **overrides: Any) -> AsyncIterator[WorkerPool]:
    """A worker pool (not yet started) over a fresh database; stopped and closed after."""
    settings = load_settings(GRAPHS_CONFIG, database=database_url, **overrides)
    storage = make_storage(settings)
    await storage.open()
    graphs = GraphRegistry.load(settings.graphs, settings.base_dir)
    await ensure_system_assistants(storage, graphs)
    pool = WorkerPool(settings, storage, graphs, StreamHub())
    try:
        yield pool
    finally:
        await pool.stop()
        await storage.close()


async def rows(storage: Storage) -> dict[str, Row]:
    async with storage.read() as tx:
        return {w["worker_id"]: w for w in await tx.list_workers()}


def ghost(worker_id: str, seen_at: float) -> Row:
    """The row a process killed long ago left behind."""
    return {
        "worker_id": worker_id,
        "kind": "worker",
        "host": "elsewhere",
        "pid": 1,
        "version": "0",
        "slots": 4,
        "beat_seconds": 3.0,
        "started_at": seen_at - 60,
        "seen_at": seen_at,
    }


async def test_a_pool_registers_is_refreshed_by_its_heartbeat_and_unregisters(
    database_url: str,
) -> None:
    # A short lease: the heartbeat (and so the registry's refresh) comes often.
    async with pool_on(database_url, lease_seconds=0.5, workers=3) as pool:
        await pool.start()
        me = (await rows(pool.storage))[pool.worker_id]
        assert (me["slots"], me["kind"], me["beat_seconds"]) == (3, "server", 0.5)
        assert f":{me['pid']}:" in pool.worker_id
        # Set seen_at an hour back: only the heartbeat can bring it forward again.
        old = clock.now() - 3600
        async with pool.storage.tx() as tx:
            await tx.run("UPDATE workers SET seen_at=? WHERE worker_id=?", [old, pool.worker_id])
        [view] = workers_view([{**me, "seen_at": old}], [], clock.now())
        assert view["alive"] is False and view["seen_seconds_ago"] >= 3600
        deadline = clock.now() + 60
        while (await rows(pool.storage))[pool.worker_id]["seen_at"] == old:
            assert clock.now() < deadline, "the heartbeat never refreshed seen_at"
            await asyncio.sleep(0.05)
        refreshed = (await rows(pool.storage))[pool.worker_id]
        assert workers_view([refreshed], [], clock.now())[0]["alive"] is True
        assert refreshed["started_at"] == me["started_at"]
        await pool.stop()
        assert pool.worker_id not in await rows(pool.storage)


async def test_a_pool_that_executes_nothing_is_not_registered(
    database_url: str, backend: str
) -> None:
    async with pool_on(database_url, workers=0) as pool:
        await pool.start()
        assert await rows(pool.storage) == {}


async def test_registration_prunes_workers_gone_long_ago(database_url: str, backend: str) -> None:
    async with pool_on(database_url) as pool:
        now = clock.now()
        async with pool.storage.tx() as tx:
            await tx.put_worker(ghost("long-gone", now - PRUNE_AFTER - 60))
            await tx.put_worker(ghost("killed-just-now", now - 60))
        await pool.start()
        left = set(await rows(pool.storage))
        # PostgreSQL: a process killed a minute ago stays listed (not alive); SQLite: one
        # process owns the file, so no other row can be a running worker.
        kept = {"killed-just-now"} if backend == "postgres" else set()
        assert left == {pool.worker_id, *kept}
        listed = workers_view(list((await rows(pool.storage)).values()), [], clock.now())
        assert {w["worker_id"]: w["alive"] for w in listed} == {
            pool.worker_id: True,
            **{k: False for k in kept},
        }


async def test_held_leases_are_the_running_runs_in_the_scope(database_url: str) -> None:
    async with pool_on(database_url) as pool:
        runs = RunService(pool.storage, pool.graphs, pool.hub, pool.notify, pool.cancel_local)
        made = []
        for org in ("org-a", "org-b"):
            body = {"assistant_id": "pipeline", "input": {"topic": org}, "if_not_exists": "create"}
            made.append((await runs.create(body, str(uuid.uuid4())))["run_id"])
        async with pool.storage.tx() as tx:
            for run_id, org in zip(made, ("org-a", "org-b"), strict=True):
                await tx.run(
                    "UPDATE runs SET status='running', worker_id='w-1', lease_until=?, "
                    "attempt=2, org=? WHERE run_id=?",
                    [clock.now() + 3600, org, run_id],
                )
                await tx.run(
                    "UPDATE threads SET org=? WHERE thread_id=(SELECT thread_id FROM runs "
                    "WHERE run_id=?)",
                    [org, run_id],
                )
            everything = await tx.held_leases("1=1", [])
            only_a = await tx.held_leases("t.org=?", ["org-a"])
        assert [r["run_id"] for r in everything] == made
        assert [r["run_id"] for r in only_a] == made[:1]
        worker = ghost("w-1", clock.now())
        [view] = workers_view([worker], only_a, clock.now())
        [lease] = view["leases"]
        assert (lease["run_id"], lease["attempt"]) == (made[0], 2)
        assert clock.parse(lease["lease_until"]) > clock.now() + 3000
