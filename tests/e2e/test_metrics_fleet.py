"""Metrics of several processes on one host (prometheus_client's multi-process mode): an API
process executing nothing and two `keel worker` processes share PostgreSQL and one
`PROMETHEUS_MULTIPROC_DIR`; a scrape of the API process sums what each worker counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.e2e.helpers import Client, poll, run_status
from tests.e2e.test_metrics import scrape, value
from tests.support.fleet import Fleet, start_fleet, stop_fleet
from tests.support.gate import Gate
from tests.support.postgres import PgCluster


@pytest.fixture(scope="module")
def fleet(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("metrics-fleet")
    shared = workdir / "prometheus"
    shared.mkdir()
    # One run at a time per worker: two held runs are necessarily one on each worker.
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "KEEL_WORKERS": "1",
        "KEEL_MODEL": "",
        "KEEL_LEASE_SECONDS": "1.5",  # short: a killed worker's run is taken over quickly
    }
    f = start_fleet(pg_cluster.create_database(), workdir, env, apis=1)
    try:
        yield f
    finally:
        stop_fleet(f)


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[Client]:
    sdk = get_client(url=fleet.apis[0].url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


async def test_a_scrape_sums_the_counts_of_every_worker_process(
    fleet: Fleet, client: Client, tmp_path: Path
) -> None:
    api, workers = fleet.apis[0], fleet.workers
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


async def test_a_killed_worker_shows_as_a_lease_expiry_and_a_recovery(
    fleet: Fleet, client: Client, tmp_path: Path
) -> None:
    api = fleet.apis[0]
    before = await scrape(api.url)
    gate = Gate(tmp_path / "gate")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0}, config=gate.config)
    await run_status(client, tid, run["run_id"], "running")
    holder = await fleet.executor(run["run_id"])
    assert holder is not None
    fleet.worker_of(holder).kill9()
    # The lease runs out; a reaper re-queues the run and the other worker takes it over.
    await poll(lambda: fleet.executor(run["run_id"]), lambda w: w not in (None, holder))
    gate.open()
    await client.runs.join(tid, run["run_id"])
    after = await scrape(api.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("keel_lease_expiries_total") == 1
    assert moved("keel_runs_recovered_total", graph="slow") == 1
    assert moved("keel_runs_claimed_total", graph="slow") == 2  # two attempts
    assert moved("keel_runs_finished_total", graph="slow", status="success") == 1
    # The killed worker never lowered its gauge; the scrape drops a dead process's.
    assert value(after, "keel_runs_executing") == 0
