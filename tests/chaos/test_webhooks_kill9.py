"""Chaos: kill -9 the delivering process while a receiver holds a webhook request open.

A batch of runs names webhooks on one receiver (tests/support/receiver.py) that holds the first
request it gets open until the test has killed the server (by construction: the request is in
flight at the kill). The server restarts on the same database; then every run is terminal and
every run's webhook delivered, each `webhook-id` received at least once and at most twice (the
held one exactly twice: once cut, once after the restart), every request correctly signed.
Keel-only (kill -9, Keel's outbox), on both backends."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import database_for
from tests.support.receiver import Receiver, verify
from tests.support.reference import ROOT
from tests.support.server import KeelServer

pytestmark = pytest.mark.chaos

RUNS = 16
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONFIG = {
    "dependencies": ["."],
    "graphs": {"pipeline": f"{ROOT / 'examples' / 'agents' / 'pipeline.py'}:graph"},
    "webhooks": {
        "url": {"disable_loopback": False, "require_https": False},
        "secret": SECRET,
        # Longer than the test: the held attempt is cut by the kill, never by its timeout.
        "timeout_seconds": 300,
        "retry": {"initial_seconds": 0.2, "max_seconds": 1, "window_seconds": 300},
    },
}
# Leases (runs and deliveries) of the killed process run out 2 s after its death (PostgreSQL).
ENV = {"KEEL_LEASE_SECONDS": "2", "KEEL_POLL_SECONDS": "0.2"}
DELIVERED_WITHIN = 90.0


def _deliveries(api: httpx.Client, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run's delivery, once each run has one that is delivered (bounded)."""
    deadline = time.monotonic() + DELIVERED_WITHIN
    while True:
        rows = []
        for run in runs:
            path = f"/threads/{run['thread_id']}/runs/{run['run_id']}/webhooks"
            rows.extend(api.get(path).json())
        if len(rows) == len(runs) and all(r["status"] == "delivered" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"not all delivered within {DELIVERED_WITHIN}s: {rows}")
        time.sleep(0.1)


def test_kill9_mid_delivery_redelivers_with_the_same_id(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "reference":
        pytest.skip("Keel-only: kill -9 of Keel's delivering process")
    config = tmp_path / "keel.json"
    config.write_text(json.dumps(CONFIG))
    database = database_for(backend, request, tmp_path)
    with Receiver() as receiver:
        srv = KeelServer(config, tmp_path, database=database, env=ENV)
        srv.start()
        try:
            with httpx.Client(base_url=srv.url, timeout=30.0) as api:
                runs = [_create(api, receiver, i) for i in range(RUNS)]
                receiver.wait_for(lambda _: receiver.held is not None)
                held = receiver.held
                assert held is not None
                srv.kill9()  # the held request is in flight: the receiver has not answered
                receiver.release()
                srv.start()
                rows = _deliveries(api, runs)
                statuses = {
                    api.get(f"/threads/{r['thread_id']}/runs/{r['run_id']}").json()["status"]
                    for r in runs
                }
        finally:
            srv.stop()
    got = receiver.received("/hold-first")
    counts = collections.Counter(r.headers["webhook-id"] for r in got)
    assert statuses == {"success"}
    assert set(counts) == {row["webhook_id"] for row in rows}
    assert all(1 <= n <= 2 for n in counts.values()), counts
    assert counts[held.headers["webhook-id"]] == 2
    assert all(verify(SECRET, r.headers, r.body) for r in got)
    twice = sum(1 for n in counts.values() if n == 2)
    print(f"\n[{backend}] {RUNS} runs, {len(got)} deliveries, {twice} delivered twice")


def _create(api: httpx.Client, receiver: Receiver, i: int) -> dict[str, Any]:
    tid = api.post("/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "pipeline", "input": {"topic": str(i)}}
    body["webhook"] = f"{receiver.url}/hold-first/{i}"
    r = api.post(f"/threads/{tid}/runs", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())
