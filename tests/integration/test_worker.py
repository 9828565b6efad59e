"""Worker pool recovery paths that need no HTTP: re-queue on start, and the lease reaper."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from keel import clock
from keel.assistants import ensure_system_assistants
from keel.graphs import GraphRegistry, system_assistant_id
from keel.runs import RunService
from keel.settings import Settings, load_settings
from keel.storage.sqlite import SqliteStorage
from keel.streams import StreamHub
from keel.worker import WorkerPool
from tests.conftest import GRAPHS_CONFIG


async def _status(storage: SqliteStorage, run_id: str) -> str:
    async with storage.read() as tx:
        run = await tx.get_run(run_id)
    assert run is not None
    return str(run["status"])


async def _wait_status(storage: SqliteStorage, run_id: str, want: str) -> None:
    deadline = clock.now() + 10
    while clock.now() < deadline:
        if await _status(storage, run_id) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run stayed {await _status(storage, run_id)!r}, wanted {want!r}")


async def _orphan(storage: SqliteStorage, runs: RunService, lease_until: float) -> str:
    """A run that a dead worker claimed: status running, someone else's expired lease."""
    body = {"assistant_id": "pipeline", "input": {"topic": "x"}, "if_not_exists": "create"}
    run = await runs.create(body, str(uuid.uuid4()))
    async with storage.tx() as tx:
        await tx.run(
            "UPDATE runs SET status='running', worker_id='dead', lease_until=?, attempt=1 "
            "WHERE run_id=?",
            [lease_until, run["run_id"]],
        )
    return str(run["run_id"])


async def _setup(tmp_path: Path) -> tuple[Settings, SqliteStorage, GraphRegistry, StreamHub]:
    settings = load_settings(GRAPHS_CONFIG, lease_seconds=0.5)
    storage = SqliteStorage(tmp_path / "k.db")
    await storage.open()
    graphs = GraphRegistry.load(settings.graphs, settings.base_dir)
    await ensure_system_assistants(storage, graphs)
    return settings, storage, graphs, StreamHub()


async def test_lease_reaper_requeues_a_run_whose_executor_vanished(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    pool = WorkerPool(settings, storage, graphs, hub)
    runs = RunService(storage, graphs, hub, lambda: None, pool.cancel_local)
    await pool.start()
    try:
        run_id = await _orphan(storage, runs, lease_until=clock.now() - 1)
        assert await _status(storage, run_id) == "running"
        await _wait_status(storage, run_id, "success")
        async with storage.read() as tx:
            run = await tx.get_run(run_id)
        assert run is not None and run["attempt"] == 2
    finally:
        await pool.stop()
        await storage.close()


async def test_reaper_leaves_live_leases_alone(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    pool = WorkerPool(settings, storage, graphs, hub)
    runs = RunService(storage, graphs, hub, lambda: None, pool.cancel_local)
    await pool.start()
    try:
        run_id = await _orphan(storage, runs, lease_until=clock.now() + 3600)
        await asyncio.sleep(settings.lease_seconds * 3)
        assert await _status(storage, run_id) == "running"
    finally:
        await pool.stop()
        await storage.close()


async def test_start_requeues_every_running_run(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    runs = RunService(storage, graphs, hub, lambda: None, lambda _r, _a: False)
    run_id = await _orphan(storage, runs, lease_until=clock.now() + 3600)
    pool = WorkerPool(settings, storage, graphs, hub)
    await pool.start()
    try:
        await _wait_status(storage, run_id, "success")
        assert system_assistant_id("pipeline") == str(
            uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "pipeline")
        )
    finally:
        await pool.stop()
        await storage.close()


async def _thread_run(runs: RunService, graph: str, input_: dict[str, object]) -> str:
    body = {"assistant_id": graph, "input": input_, "if_not_exists": "create"}
    run = await runs.create(body, str(uuid.uuid4()))
    return str(run["run_id"])


async def test_run_timeout_ends_in_timeout_and_thread_error(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    settings.run_timeout_seconds = 0.3
    pool = WorkerPool(settings, storage, graphs, hub)
    runs = RunService(storage, graphs, hub, pool.notify, pool.cancel_local)
    await pool.start()
    try:
        run_id = await _thread_run(runs, "slow", {"delay": 5})
        await _wait_status(storage, run_id, "timeout")
        async with storage.read() as tx:
            run = await tx.get_run(run_id)
            assert run is not None
            thread = await tx.get_thread(run["thread_id"])
        assert thread is not None and thread["status"] == "error"
        assert run["result"]["__error__"]["error"] == "TimeoutError"
    finally:
        await pool.stop()
        await storage.close()


async def test_graph_raising_timeouterror_is_an_error_not_a_timeout(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    pool = WorkerPool(settings, storage, graphs, hub)
    runs = RunService(storage, graphs, hub, pool.notify, pool.cancel_local)
    await pool.start()
    try:
        run_id = await _thread_run(runs, "failing", {"kind": "timeout"})
        await _wait_status(storage, run_id, "error")
    finally:
        await pool.stop()
        await storage.close()


async def test_too_many_attempts_fail_the_run(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    runs = RunService(storage, graphs, hub, lambda: None, lambda _r, _a: False)
    run_id = await _orphan(storage, runs, lease_until=clock.now() - 1)
    async with storage.tx() as tx:
        await tx.run("UPDATE runs SET attempt=? WHERE run_id=?", [settings.max_attempts, run_id])
    pool = WorkerPool(settings, storage, graphs, hub)
    await pool.start()
    try:
        await _wait_status(storage, run_id, "error")
        async with storage.read() as tx:
            run = await tx.get_run(run_id)
        assert run is not None and "abandoned" in run["result"]["__error__"]["message"]
    finally:
        await pool.stop()
        await storage.close()


async def test_shutdown_hands_in_flight_runs_back_to_the_queue(tmp_path: Path) -> None:
    settings, storage, graphs, hub = await _setup(tmp_path)
    pool = WorkerPool(settings, storage, graphs, hub)
    runs = RunService(storage, graphs, hub, pool.notify, pool.cancel_local)
    await pool.start()
    run_id = await _thread_run(runs, "slow", {"delay": 0.4})
    await _wait_status(storage, run_id, "running")
    await pool.stop(grace=0.05)
    assert await _status(storage, run_id) == "pending"
    second = WorkerPool(settings, storage, graphs, hub)
    await second.start()
    try:
        await _wait_status(storage, run_id, "success")
    finally:
        await second.stop()
        await storage.close()
