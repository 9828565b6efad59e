"""Metrics of several processes on one host (prometheus_client's multi-process mode): an API
process executing nothing and two `keel worker` processes share PostgreSQL and one
`PROMETHEUS_MULTIPROC_DIR`; a scrape of the API process sums what each worker counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_CONFIG
from tests.e2e.helpers import Client, run_status
from tests.e2e.test_metrics import scrape, value
from tests.support.gate import Gate
from tests.support.postgres import PgCluster
from tests.support.server import KeelServer, KeelWorker


@pytest.fixture(scope="module")
def fleet(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KeelServer, list[KeelWorker]]]:
    workdir = tmp_path_factory.mktemp("metrics-fleet")
    shared = workdir / "prometheus"
    shared.mkdir()
    # One run at a time per worker: two held runs are necessarily one on each worker.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "KEEL_WORKERS": "1", "KEEL_MODEL": ""}
    database = pg_cluster.create_database()
    api = KeelServer(
        GRAPHS_CONFIG, workdir / "api", database=database, env=env, extra_args=["--no-workers"]
    )
    workers = [KeelWorker(GRAPHS_CONFIG, workdir / f"w{i}", database, env=env) for i in range(2)]
    api.start()
    try:
        for worker in workers:
            worker.start()
        yield api, workers
    finally:
        for worker in workers:
            worker.stop()
        api.stop()


@pytest.fixture
async def client(fleet: tuple[KeelServer, list[KeelWorker]]) -> AsyncIterator[Client]:
    sdk = get_client(url=fleet[0].url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


async def test_a_scrape_sums_the_counts_of_every_worker_process(
    fleet: tuple[KeelServer, list[KeelWorker]], client: Client, tmp_path: Path
) -> None:
    api, workers = fleet
    gate = Gate(tmp_path / "gate")
    held = []
    for _ in workers:
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "slow", input={"delay": 0}, config=gate.config)
        held.append((tid, run["run_id"]))
    for tid, run_id in held:
        await run_status(client, tid, run_id, "running")
    samples = await scrape(api.url)
    # Each worker executes one (it takes one at a time): the live gauge is their sum.
    assert value(samples, "keel_runs_executing") == 2
    assert value(samples, "keel_runs", status="running", graph="slow") == 2
    gate.open()
    for tid, run_id in held:
        await client.runs.join(tid, run_id)
    samples = await scrape(api.url)
    assert value(samples, "keel_runs_created_total", graph="slow") == 2  # by the API process
    assert value(samples, "keel_runs_claimed_total", graph="slow") == 2  # one by each worker
    assert value(samples, "keel_runs_finished_total", graph="slow", status="success") == 2
    assert value(samples, "keel_run_duration_seconds_count", graph="slow", status="success") == 2
    assert value(samples, "keel_runs_executing") == 0
