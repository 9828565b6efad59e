"""Quotas (`auth.quotas`) through real servers: requests per second per organisation and per
API key, concurrent runs, runs per day; a refusal is a 429 `{"detail"}` with `Retry-After`, and
another organisation is not affected. On PostgreSQL, two server processes sharing the database
enforce one limit between them.

Keel-only (built-in organisations and quotas have no counterpart in the reference). Users are
put in organisations by tests/graphs/auth_org_headers.py. Each limit is made deterministic by
construction: a rate of one request per 1000 s (the window never moves during a test), runs held
by a gate (tests/support/gate.py), and a UTC day checked not to have changed meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.auth.quotas import BUSY_RETRY_AFTER
from tests.conftest import database_for
from tests.support.gate import Gate
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
SLOW = 1000  # seconds per request: no token comes back while a test runs
QUOTAS = {
    "default": {"requests_per_second": 1000, "burst": 1000},
    "orgs": {
        "burst": {"requests_per_second": 1 / SLOW, "burst": 3},
        "busy": {"concurrent_runs": 2},
        "daily-0": {"runs_per_day": 2},
        "daily-1": {"runs_per_day": 2},
        "shared": {"requests_per_second": 1 / SLOW, "burst": 4},
        "shared-busy": {"concurrent_runs": 1},
    },
    "keys": {"slowkey": {"requests_per_second": 1 / SLOW, "burst": 2}},
}


def write_config(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "langgraph.json"
    graphs = {"slow": f"{GRAPHS / 'slow.py'}:graph", "echo": f"{GRAPHS / 'config_echo.py'}:graph"}
    auth = {
        "path": f"{GRAPHS / 'auth_org_headers.py'}:auth",
        "api_keys": True,
        "quotas": QUOTAS,
    }
    config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "auth": auth}))
    return config


@pytest.fixture(scope="module")
def quota_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel-only: built-in organisations and quotas")
    workdir = tmp_path_factory.mktemp(f"quotas-{backend}")
    srv = KeelServer(
        write_config(workdir), workdir, database=database_for(backend, request, workdir)
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def http(quota_server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quota_server.url, timeout=60.0) as client:
        yield client


def user(org: str, key: str | None = None, name: str = "u") -> dict[str, str]:
    headers = {"x-test-user": f"{name}@{org}", "x-test-org": org}
    return {**headers, "x-test-key": key} if key else headers


def refused(response: httpx.Response, detail: str) -> int:
    """Assert a quota refusal; its Retry-After."""
    assert response.status_code == 429, response.text
    assert detail in response.json()["detail"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


async def search(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/threads/search", json={}, headers=headers)


# ------------------------------------------------------------------ request rate
async def test_the_request_over_the_burst_gets_429_and_other_orgs_go_on(
    http: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await search(http, user("burst"))).status_code == 200
    response = await search(http, user("burst", name="someone-else"))
    retry = refused(response, "Rate limit exceeded for organisation 'burst'")
    assert SLOW - 60 <= retry <= SLOW
    assert (await search(http, user("calm"))).status_code == 200
    # Open paths are not counted (nor refused).
    assert (await http.get("/ok")).status_code == 200


async def test_a_key_over_its_rate_leaves_its_org_and_other_keys_alone(
    http: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        assert (await search(http, user("keyorg", "slowkey"))).status_code == 200
    refused(await search(http, user("keyorg", "slowkey")), "API key 'slowkey'")
    assert (await search(http, user("keyorg", "otherkey"))).status_code == 200
    assert (await search(http, user("keyorg"))).status_code == 200


# -------------------------------------------------------------------------- runs
async def create_run(
    http: httpx.AsyncClient, headers: dict[str, str], thread_id: str | None = None, **body: Any
) -> httpx.Response:
    path = f"/threads/{thread_id}/runs" if thread_id else "/runs"
    body = {"assistant_id": "echo", "input": {}, **body}
    return await http.post(path, json=body, headers=headers)


async def new_thread(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await http.post("/threads", json={}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def join(http: httpx.AsyncClient, headers: dict[str, str], run: dict[str, Any]) -> None:
    response = await http.get(
        f"/threads/{run['thread_id']}/runs/{run['run_id']}/join", headers=headers
    )
    assert response.status_code == 200, response.text


async def test_concurrent_runs_are_limited_while_runs_are_held(
    http: httpx.AsyncClient, gate: Gate
) -> None:
    busy = user("busy")
    held = {"assistant_id": "slow", "input": {"delay": 0}, "config": gate.config}
    tid = await new_thread(http, busy)
    runs = []
    for thread in (tid, await new_thread(http, busy)):
        response = await create_run(http, busy, thread, **held)
        assert response.status_code == 200, response.text
        runs.append(response.json())
    retry = refused(await create_run(http, busy, tid, **held), "2 concurrent runs")
    assert retry == BUSY_RETRY_AFTER
    refused(await create_run(http, busy), "2 concurrent runs")  # stateless runs count too
    listed = await http.get(f"/threads/{tid}/runs", headers=busy)
    assert [r["run_id"] for r in listed.json()] == [runs[0]["run_id"]]  # nothing left behind
    calm = await create_run(http, user("calm"), await new_thread(http, user("calm")))
    assert calm.status_code == 200, calm.text
    gate.open()
    for run in runs:
        await join(http, busy, run)
    assert (await create_run(http, busy, tid)).status_code == 200


async def test_runs_per_day_are_limited_until_utc_midnight(http: httpx.AsyncClient) -> None:
    # Two organisations with the same limit: should the UTC day change during the first try,
    # the second cannot straddle a midnight too.
    for org in ("daily-0", "daily-1"):
        day = datetime.now(UTC).date()
        headers = user(org)
        tid = await new_thread(http, headers)
        first = [await create_run(http, headers, tid) for _ in range(2)]
        third = await create_run(http, headers, tid)
        now = datetime.now(UTC)
        if now.date() != day:
            continue
        assert [r.status_code for r in first] == [200, 200]
        retry = refused(third, "2 runs per day")
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        until_midnight = 86400 - (now - midnight).total_seconds()
        assert until_midnight - 60 <= retry <= until_midnight + 1
        for run in first:
            await join(http, headers, run.json())
        refused(await create_run(http, headers, tid), "2 runs per day")  # ended ones count
        return
    raise AssertionError("the UTC day changed during both tries")


# ---------------------------------------------------------- two server processes
@pytest.fixture(scope="module")
def second_server(
    quota_server: KeelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    """Another Keel process on the same database, with the same config."""
    workdir = tmp_path_factory.mktemp("second")
    srv = KeelServer(write_config(workdir), workdir, database=quota_server.database)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.backends("postgres")
async def test_two_processes_share_one_request_budget(
    http: httpx.AsyncClient, second_server: KeelServer
) -> None:
    async with httpx.AsyncClient(base_url=second_server.url, timeout=60.0) as other:
        for client in (http, other, http, other):
            assert (await search(client, user("shared"))).status_code == 200
        refused(await search(http, user("shared")), "organisation 'shared'")
        refused(await search(other, user("shared")), "organisation 'shared'")


@pytest.mark.backends("postgres")
async def test_two_processes_racing_for_the_last_run_slot_admit_one(
    http: httpx.AsyncClient, second_server: KeelServer, gate: Gate
) -> None:
    headers = user("shared-busy")
    held = {"assistant_id": "slow", "input": {"delay": 0}, "config": gate.config}
    async with httpx.AsyncClient(base_url=second_server.url, timeout=60.0) as other:
        threads = [await new_thread(http, headers) for _ in range(6)]
        clients = [http, other] * 3
        responses = await asyncio.gather(
            *(create_run(c, headers, t, **held) for c, t in zip(clients, threads, strict=True))
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 429, 429, 429, 429, 429], [r.text for r in responses]
    gate.open()
    winner = next(r.json() for r in responses if r.status_code == 200)
    await join(http, headers, winner)
