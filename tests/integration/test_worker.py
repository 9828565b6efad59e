"""Worker pool paths that need no HTTP: re-queue on start, lease reaper, timeout, attempt limit,
graceful shutdown, cancels that come before a run's task runs or before a restart."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keel import clock
from keel.assistants import ensure_system_assistants
from keel.faults import Faults
from keel.graphs import GraphRegistry
from keel.runs import RunService
from keel.settings import Settings, load_settings
from keel.storage import make_storage
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import StreamHub
from keel.worker import WorkerPool
from tests.conftest import GRAPHS_CONFIG
from tests.support.faults import HOLD, FaultPoints
from tests.support.gate import Gate


@dataclass
class Rig:
    settings: Settings
    storage: Storage
    graphs: GraphRegistry
    hub: StreamHub
    pool: WorkerPool
    runs: RunService

    def another_pool(self) -> WorkerPool:
        return WorkerPool(self.settings, self.storage, self.graphs, self.hub)

    async def run_row(self, run_id: str) -> Row:
        async with self.storage.read() as tx:
            run = await tx.get_run(run_id)
        assert run is not None
        return run

    async def wait_status(self, run_id: str, want: str) -> Row:
        deadline = clock.now() + 60
        while clock.now() < deadline:
            run = await self.run_row(run_id)
            if run["status"] == want:
                return run
            await asyncio.sleep(0.05)
        raise AssertionError(f"run stayed {run['status']!r}, wanted {want!r}")

    async def wait_gone(self, run_id: str) -> None:
        deadline = clock.now() + 60
        while clock.now() < deadline:
            async with self.storage.read() as tx:
                if await tx.get_run(run_id) is None:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"run {run_id} still there")

    async def thread_run(
        self, graph: str, input_: dict[str, Any], thread_id: str | None = None, **more: Any
    ) -> str:
        body = {"assistant_id": graph, "input": input_, "if_not_exists": "create", **more}
        return str((await self.runs.create(body, thread_id or str(uuid.uuid4())))["run_id"])

    async def orphan(self, lease_until: float, attempt: int = 1) -> str:
        """A run that a dead worker claimed: status running, someone else's lease."""
        run_id = await self.thread_run("pipeline", {"topic": "x"})
        async with self.storage.tx() as tx:
            await tx.run(
                "UPDATE runs SET status='running', worker_id='dead', lease_until=?, attempt=? "
                "WHERE run_id=?",
                [lease_until, attempt, run_id],
            )
        return run_id


@contextlib.asynccontextmanager
async def rig(
    database_url: str, faults: Faults | None = None, **overrides: Any
) -> AsyncIterator[Rig]:
    """Storage, graphs and a (not yet started) worker pool over a fresh database. Keel's own
    lease (3 s): with a shorter one a pause of the event loop on a loaded machine (a quarter of
    a second for a 0.5 s lease) would fence a run off and hand it back, another attempt."""
    settings = load_settings(GRAPHS_CONFIG, database=database_url, **overrides)
    storage = make_storage(settings)
    await storage.open()
    graphs = GraphRegistry.load(settings.graphs, settings.base_dir)
    await ensure_system_assistants(storage, graphs)
    hub = StreamHub()
    pool = WorkerPool(settings, storage, graphs, hub, faults or Faults())
    runs = RunService(storage, graphs, hub, pool.notify, pool.cancel_local)
    try:
        yield Rig(settings, storage, graphs, hub, pool, runs)
    finally:
        await pool.stop()
        await storage.close()


async def test_lease_reaper_requeues_a_run_whose_executor_vanished(database_url: str) -> None:
    async with rig(database_url) as r:
        await r.pool.start()
        run_id = await r.orphan(lease_until=clock.now() - 1)
        assert (await r.run_row(run_id))["status"] == "running"
        run = await r.wait_status(run_id, "success")
        assert run["attempt"] == 2


async def test_reaper_leaves_live_leases_alone(database_url: str) -> None:
    async with rig(database_url) as r:
        await r.pool.start()
        run_id = await r.orphan(lease_until=clock.now() + 3600)
        # An expired one alongside: once it is done, a reaper pass has seen both.
        await r.wait_status(await r.orphan(lease_until=clock.now() - 1), "success")
        assert (await r.run_row(run_id))["status"] == "running"


async def test_start_requeues_every_running_run_on_sqlite_only(
    database_url: str, backend: str
) -> None:
    """SQLite: one process per file, so a run left running is an orphan. PostgreSQL: it may be
    another live process's; only its lease running out frees it."""
    async with rig(database_url) as r:
        run_id = await r.orphan(lease_until=clock.now() + 3600)
        expired = await r.orphan(lease_until=clock.now() - 1)
        await r.pool.start()
        await r.wait_status(expired, "success")  # a reaper pass (or the start) has seen both
        if backend == "sqlite":
            await r.wait_status(run_id, "success")
        else:
            assert (await r.run_row(run_id))["status"] == "running"


async def test_run_timeout_ends_in_timeout_and_thread_error(database_url: str) -> None:
    async with rig(database_url, run_timeout_seconds=0.3) as r:
        await r.pool.start()
        run_id = await r.thread_run("slow", {"delay": 30})
        run = await r.wait_status(run_id, "timeout")
        async with r.storage.read() as tx:
            thread = await tx.get_thread(run["thread_id"])
        assert thread is not None and thread["status"] == "error"
        assert run["result"]["__error__"]["error"] == "TimeoutError"


async def test_graph_raising_timeouterror_is_an_error_not_a_timeout(database_url: str) -> None:
    async with rig(database_url) as r:
        await r.pool.start()
        run_id = await r.thread_run("failing", {"kind": "timeout"})
        await r.wait_status(run_id, "error")


async def test_too_many_attempts_fail_the_run(database_url: str) -> None:
    async with rig(database_url) as r:
        run_id = await r.orphan(lease_until=clock.now() - 1, attempt=r.settings.max_attempts)
        await r.pool.start()
        run = await r.wait_status(run_id, "error")
        assert "abandoned" in run["result"]["__error__"]["message"]


async def test_shutdown_hands_in_flight_runs_back_to_the_queue(
    database_url: str, gate: Gate
) -> None:
    async with rig(database_url) as r:
        await r.pool.start()
        # Held in its first step until the gate opens.
        run_id = await r.thread_run("slow", {"delay": 0.01}, config=gate.config)
        await r.wait_status(run_id, "running")
        await r.pool.stop(grace=0.05)
        assert (await r.run_row(run_id))["status"] == "pending"
        gate.open()
        second = r.another_pool()
        await second.start()
        try:
            await r.wait_status(run_id, "success")
        finally:
            await second.stop()


async def test_shutdown_during_a_claim_hands_the_claimed_run_back(
    database_url: str, gate: Gate, tmp_path: Path
) -> None:
    """Shutdown cancelled the claim loop wherever it was: a run just claimed (status running,
    its lease taken) but not yet given a task stayed `running` under the exiting process until
    its lease ran out (seen under load: the run's row said running right after stop()). Here
    the claim loop is held right after the claim while shutdown begins."""
    points = FaultPoints(tmp_path / "faults")
    thread_id = str(uuid.uuid4())
    points.arm("after-claim", thread_id)
    async with rig(database_url, Faults(points.directory, hold=HOLD)) as r:
        run_id = await r.thread_run("slow", {"delay": 0.01}, thread_id, config=gate.config)
        await r.pool.start()
        try:
            assert await points.held("after-claim", thread_id) == run_id
            stopping = asyncio.create_task(r.pool.stop(grace=0.05))
            await asyncio.sleep(0)  # shutdown has begun: the claim loop is stopped or waited for
        finally:
            points.release_all()
        await stopping
        assert (await r.run_row(run_id))["status"] == "pending"


@pytest.mark.backends("postgres")  # a row lock another connection holds: PostgreSQL
async def test_shutdown_waits_for_the_hand_back_past_its_grace(
    database_url: str, gate: Gate
) -> None:
    """The hand-back is a transaction of its own: shutdown waits for it even when the database
    is slow, instead of giving it only the grace again (it then returned with the run still
    `running`, and the process exited without handing it back: the run waited for its lease
    to expire). Here the run's row is locked until the test has seen shutdown still waiting."""
    async with rig(database_url) as r:
        await r.pool.start()
        run_id = await r.thread_run("slow", {"delay": 0.01}, config=gate.config)
        await r.wait_status(run_id, "running")
        connecting = psycopg.AsyncConnection.connect(database_url)
        async with await connecting as blocker, blocker.transaction():
            await blocker.execute("SELECT 1 FROM runs WHERE run_id=%s FOR UPDATE", [run_id])
            stopping = asyncio.create_task(r.pool.stop(grace=0.05))
            await asyncio.sleep(1.0)  # the grace twice over, ten times
            assert not stopping.done()
        await stopping
        assert (await r.run_row(run_id))["status"] == "pending"


async def test_a_cancel_before_the_runs_task_first_runs_ends_the_run(database_url: str) -> None:
    """`Task.cancel()` on a task that has not started yet means its coroutine never runs (no
    `finally` in it either): a cancel coming that early must still end the run, at once."""
    async with rig(database_url, lease_seconds=5.0) as r:
        run_id = await r.thread_run("slow", {"delay": 30})
        run = await r.pool._claim()
        assert run is not None and run["run_id"] == run_id
        r.pool._spawn(run)
        assert r.pool.cancel_local(run_id, "interrupt")  # its task has not run a line yet
        done = await r.wait_status(run_id, "interrupted")
        async with r.storage.read() as tx:
            assert not await tx.run_has_checkpoint(done["thread_id"], run_id)
            thread = await tx.get_thread(done["thread_id"])
        assert thread is not None and thread["status"] == "idle"
        if r.pool._tasks:  # its task may still be finishing
            await asyncio.wait(list(r.pool._tasks.values()), timeout=60)
        assert r.pool.executing() == []  # its slot is free again


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_a_cancel_stored_on_a_requeued_run_ends_it_without_running_it(
    database_url: str, action: str
) -> None:
    """A run cancelled while it ran and then re-queued (its process died, or shut down): the
    next claim ends it as the cancel said; its graph does not run again."""
    async with rig(database_url) as r:
        run_id = await r.orphan(lease_until=clock.now() - 1)
        async with r.storage.tx() as tx:
            await tx.set_cancel(run_id, action)
            thread_id = (await tx.get_run(run_id) or {})["thread_id"]
        await r.pool.start()
        if action == "interrupt":
            run = await r.wait_status(run_id, "interrupted")
            assert run["attempt"] == 2
        else:
            await r.wait_gone(run_id)
        async with r.storage.read() as tx:
            assert not await tx.run_has_checkpoint(thread_id, run_id)
            thread = await tx.get_thread(thread_id)
        assert thread is not None and thread["status"] == "idle"


@pytest.mark.backends("postgres")  # one worker pool per SQLite file: no other to take over
async def test_leases_are_renewed_while_shutdown_waits_for_runs(
    database_url: str, gate: Gate
) -> None:
    """During the shutdown grace the pool still renews its runs' leases, so no other worker
    takes one over while it is still executing (and runs it a second time). The run is held
    until its first lease has run out and the other pool's reaper (every 0.5 s) has looked."""
    async with rig(database_url) as r:
        await r.pool.start()
        run_id = await r.thread_run("slow", {"delay": 0.01}, config=gate.config)
        first_lease = float((await r.wait_status(run_id, "running"))["lease_until"])
        stopping = asyncio.create_task(r.pool.stop(grace=60))
        second = r.another_pool()
        await second.start()
        try:
            await asyncio.sleep(max(first_lease + 1.0 - clock.now(), 0.0))
            gate.open()
            await stopping
            run = await r.run_row(run_id)
            assert run["status"] == "success" and run["attempt"] == 1
        finally:
            await second.stop()
