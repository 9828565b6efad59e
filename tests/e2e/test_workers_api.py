"""`GET /keel/workers` and `GET /keel/threads/{id}/runs` on both dialects, with built-in API keys:
the server's in-process pool is listed with the lease of a run it executes (held at a gate), the
run's attempt and worker are read from the thread; another organisation sees the worker but
never the run; no credentials is a 401, a bad or hidden thread a 422/404, each with a detail.

Keel-only (Keel's extensions, built-in auth): nothing here runs against the reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from keel import clock
from tests.e2e.helpers import poll
from tests.support.api_keys import headers, org_keys
from tests.support.configured import serve_keel
from tests.support.gate import Gate
from tests.support.reference import ROOT
from tests.support.server import KeelServer

MISSING = "00000000-0000-0000-0000-000000000001"
SLOW = f"{ROOT / 'tests' / 'graphs' / 'slow.py'}:graph"


@pytest.fixture(scope="module")
def keyed(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    config = {"graphs": {"slow": SLOW}, "auth": {"api_keys": True}}
    yield from serve_keel(backend, request, tmp_path_factory.mktemp(f"workers-{backend}"), config)


@pytest.fixture(scope="module")
def keys(keyed: KeelServer) -> dict[str, str]:
    return org_keys(keyed)


@pytest.fixture
async def http(keyed: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as raw:
        yield raw


async def _json(http: httpx.AsyncClient, path: str, key: str) -> Any:
    got = await http.get(path, headers=headers(key))
    assert got.status_code == 200, got.text
    return got.json()


async def _held_run(http: httpx.AsyncClient, key: str, gate: Gate) -> tuple[str, str]:
    """A thread of org `key` and a run of it held at the gate's first step (running)."""
    tid = (await http.post("/threads", json={}, headers=headers(key))).json()["thread_id"]
    body = {"assistant_id": "slow", "input": {"delay": 0, "tag": "w"}, "config": gate.config}
    made = await http.post(f"/threads/{tid}/runs", json=body, headers=headers(key))
    assert made.status_code == 200, made.text
    return tid, made.json()["run_id"]


def _leases(workers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lease["run_id"]: {**lease, "worker": w} for w in workers for lease in w["leases"]}


async def test_the_servers_pool_is_listed_with_its_runs_lease_and_attempt(
    http: httpx.AsyncClient, keys: dict[str, str], gate: Gate
) -> None:
    tid, run_id = await _held_run(http, keys["a_member"], gate)
    workers = await poll(
        lambda: _json(http, "/keel/workers", keys["a_member"]), lambda w: run_id in _leases(w)
    )
    lease = _leases(workers)[run_id]
    me = lease["worker"]
    assert (me["kind"], me["alive"], me["slots"]) == ("server", True, 10)
    assert f"{me['host']}:{me['pid']}:" in me["worker_id"]
    assert me["seen_seconds_ago"] >= 0 and clock.parse(me["seen_at"]) >= clock.parse(
        me["started_at"]
    )
    assert (lease["thread_id"], lease["assistant_id"] is not None, lease["attempt"]) == (
        tid,
        True,
        1,
    )
    assert clock.parse(lease["lease_until"]) > clock.parse(lease["updated_at"])
    [attempt] = await _json(http, f"/keel/threads/{tid}/runs", keys["a_viewer"])
    assert (attempt["run_id"], attempt["status"], attempt["attempt"]) == (run_id, "running", 1)
    assert attempt["worker_id"] == me["worker_id"] and attempt["lease_until"] is not None
    # The reference's Run object stays as it is.
    [run] = await _json(http, f"/threads/{tid}/runs", keys["a_member"])
    assert not {"attempt", "worker_id", "lease_until"} & set(run)
    gate.open()
    await poll(
        lambda: _json(http, f"/keel/threads/{tid}/runs", keys["a_member"]),
        lambda runs: runs[0]["status"] == "success",
    )
    [done] = await _json(http, f"/keel/threads/{tid}/runs", keys["a_member"])
    assert (done["attempt"], done["worker_id"], done["lease_until"]) == (1, None, None)
    assert run_id not in _leases(await _json(http, "/keel/workers", keys["a_member"]))


async def test_another_organisation_never_sees_the_runs(
    http: httpx.AsyncClient, keys: dict[str, str], gate: Gate
) -> None:
    tid, run_id = await _held_run(http, keys["a_member"], gate)
    try:
        await poll(
            lambda: _json(http, "/keel/workers", keys["a_member"]), lambda w: run_id in _leases(w)
        )
        for other in ("b_member", "b_admin"):
            got = await http.get("/keel/workers", headers=headers(keys[other]))
            assert got.status_code == 200 and got.json(), got.text
            assert run_id not in got.text and tid not in got.text
            hidden = await http.get(f"/keel/threads/{tid}/runs", headers=headers(keys[other]))
            assert hidden.status_code == 404 and hidden.json()["detail"], hidden.text
    finally:
        gate.open()
    await poll(
        lambda: _json(http, f"/keel/threads/{tid}/runs", keys["a_member"]),
        lambda runs: runs[0]["status"] == "success",
    )


async def test_without_credentials_both_are_401(http: httpx.AsyncClient) -> None:
    for path in ("/keel/workers", f"/keel/threads/{MISSING}/runs"):
        got = await http.get(path)
        assert got.status_code == 401 and got.json()["detail"], got.text
        bad = await http.get(path, headers=headers("keel_nope_nope"))
        assert bad.status_code == 401 and bad.json()["detail"], bad.text


async def test_a_bad_or_missing_thread_is_422_or_404(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    member = headers(keys["a_member"])
    bad = await http.get("/keel/threads/not-a-uuid/runs", headers=member)
    assert bad.status_code == 422 and "thread_id" in str(bad.json()["detail"]), bad.text
    missing = await http.get(f"/keel/threads/{MISSING}/runs", headers=member)
    assert missing.status_code == 404 and MISSING in missing.json()["detail"], missing.text
    limit = await http.get(f"/keel/threads/{MISSING}/runs?limit=x", headers=member)
    assert limit.status_code == 422 and limit.json()["detail"], limit.text
