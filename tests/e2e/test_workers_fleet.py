"""The worker registry across processes on PostgreSQL: an API process executing nothing and two
`keel worker` processes. `GET /keel/workers` on the API process lists both workers (not itself)
with the lease of the run each executes; a worker killed with SIGKILL stays listed, reported not
alive once its `seen_at` is old, while its run is recovered by the other worker (attempt 2, read
through `GET /keel/threads/{id}/runs`); a worker stopped with SIGTERM removes its row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from keel import clock
from tests.e2e.helpers import poll
from tests.support.fleet import Fleet, start_fleet, stop_fleet
from tests.support.gate import Gate
from tests.support.postgres import PgCluster


@pytest.fixture(scope="module")
def fleet(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    env = {"KEEL_LEASE_SECONDS": "1.5", "KEEL_MODEL": "", "KEEL_SHUTDOWN_GRACE_SECONDS": "1"}
    f = start_fleet(pg_cluster.create_database(), tmp_path_factory.mktemp("wfleet"), env, apis=1)
    try:
        yield f
    finally:
        stop_fleet(f)


@pytest.fixture
async def http(fleet: Fleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.apis[0].url, timeout=30) as raw:
        yield raw


async def _get(http: httpx.AsyncClient, path: str) -> Any:
    got = await http.get(path)
    assert got.status_code == 200, got.text
    return got.json()


def _by_pid(workers: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {w["pid"]: w for w in workers}


async def test_both_worker_processes_are_listed_and_the_api_process_is_not(
    fleet: Fleet, http: httpx.AsyncClient
) -> None:
    workers = _by_pid(await _get(http, "/keel/workers"))
    assert set(workers) == {w.pid for w in fleet.workers}
    assert {(w["kind"], w["alive"], w["slots"]) for w in workers.values()} == {("worker", True, 10)}


async def test_a_killed_worker_is_not_alive_and_its_run_is_attempted_again(
    fleet: Fleet, http: httpx.AsyncClient, gate: Gate
) -> None:
    tid = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "slow", "input": {"delay": 0, "tag": "k"}, "config": gate.config}
    run_id = (await http.post(f"/threads/{tid}/runs", json=body)).json()["run_id"]

    def holder(workers: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((w for w in workers if any(x["run_id"] == run_id for x in w["leases"])), None)

    held = holder(await poll(lambda: _get(http, "/keel/workers"), lambda w: holder(w) is not None))
    assert held is not None and held["alive"]
    [lease] = held["leases"]
    assert (lease["thread_id"], lease["attempt"]) == (tid, 1)
    victim = fleet.worker_of(held["worker_id"])
    victim.kill9()
    # Its row stays; a heartbeat that stopped an hour ago makes it "not alive" (by construction,
    # not by waiting for the bound to pass).
    with psycopg.connect(fleet.database, autocommit=True) as pg:
        pg.execute(
            "UPDATE workers SET seen_at=%s WHERE worker_id=%s",
            [clock.now() - 3600, held["worker_id"]],
        )
    dead = {w["worker_id"]: w for w in await _get(http, "/keel/workers")}[held["worker_id"]]
    assert dead["alive"] is False and dead["seen_seconds_ago"] >= 3600
    gate.open()
    runs = await poll(
        lambda: _get(http, f"/keel/threads/{tid}/runs"), lambda r: r[0]["status"] == "success"
    )
    # Attempt 2, or later if a loaded machine let a lease (1.5 s) run out again.
    assert runs[0]["run_id"] == run_id and runs[0]["attempt"] >= 2
    assert fleet.run_row(run_id)["attempt"] == runs[0]["attempt"]
    after = {w["worker_id"]: w for w in await _get(http, "/keel/workers")}
    assert after[held["worker_id"]]["leases"] == [] and not after[held["worker_id"]]["alive"]


async def test_a_worker_stopped_cleanly_removes_its_row(
    fleet: Fleet, http: httpx.AsyncClient
) -> None:
    live = [w for w in fleet.workers if w.proc is not None]
    assert live
    leaving = live[0]
    pid = leaving.pid
    assert pid in _by_pid(await _get(http, "/keel/workers"))
    assert leaving.stop() == 0
    assert pid not in _by_pid(await _get(http, "/keel/workers"))
