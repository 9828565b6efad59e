"""Webhooks end to end: a run that names a `webhook` is POSTed to a real local receiver when it
ends (tests/support/receiver.py), on both backends.

Two servers per backend: `open_url` (loopback allowed, a secret, fast retries, 1.5 s timeout)
delivers; `strict_url` (port 443 only, and a `url` section's defaults: https, 2048 characters,
loopback refused; `http.disable_webhooks`) refuses. Expectations checked against the reference:
the body, the 422s (the section's defaults too) and `disable_webhooks`; retries, `webhook-id`,
signatures, the status endpoint and the never-followed redirect are Keel's (skipped there)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import database_for
from tests.e2e.helpers import RUN_KEYS, poll
from tests.support.configured import reference_server
from tests.support.receiver import Receiver, verify
from tests.support.reference import ROOT
from tests.support.server import KeelServer

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GRAPHS = {
    "pipeline": f"{ROOT / 'examples' / 'agents' / 'pipeline.py'}:graph",
    "failing": f"{ROOT / 'tests' / 'graphs' / 'failing.py'}:graph",
}
ADDED = {"run_started_at", "run_ended_at", "webhook_sent_at", "values"}
OPEN = {
    "url": {"disable_loopback": False, "require_https": False, "allowed_domains": ["127.0.0.1"]},
    "headers": {"x-deployment": "keel-${{ env.LG_WEBHOOK_DEPLOYMENT }}"},
    "secret": SECRET,
    "timeout_seconds": 1.5,
    "retry": {"initial_seconds": 0.2, "max_seconds": 0.4, "window_seconds": 3},
}
# `require_https` (true) and `max_url_length` (2048) left out: a `url` section's defaults.
STRICT = {"url": {"allowed_ports": [443]}}
ENV = {"LG_WEBHOOK_DEPLOYMENT": "test", "KEEL_POLL_SECONDS": "0.2"}


def _serve(
    backend: str, request: pytest.FixtureRequest, workdir: Path, config: dict[str, Any]
) -> Iterator[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "langgraph.json"
    srv: KeelServer | Any
    if backend == "reference":
        config = {
            **config,
            "webhooks": {k: v for k, v in config["webhooks"].items() if k != "secret"},
        }
        for key in ("timeout_seconds", "retry"):
            config["webhooks"].pop(key, None)
        path.write_text(json.dumps(config))
        srv = reference_server(path, workdir)
        srv.extra_env.update(ENV)
    else:
        path.write_text(json.dumps(config))
        database = database_for(backend, request, workdir)
        srv = KeelServer(path, workdir, database=database, env=ENV)
    srv.start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rc:
        yield rc


@pytest.fixture(scope="module")
def open_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = {"dependencies": ["."], "graphs": GRAPHS, "webhooks": OPEN}
    yield from _serve(backend, request, tmp_path_factory.mktemp(f"wh-open-{backend}"), config)


@pytest.fixture(scope="module")
def strict_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = {
        "dependencies": ["."],
        "graphs": GRAPHS,
        "webhooks": STRICT,
        "http": {"disable_webhooks": True},
    }
    yield from _serve(backend, request, tmp_path_factory.mktemp(f"wh-strict-{backend}"), config)


@pytest.fixture
async def api(open_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=open_url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def strict(strict_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=strict_url, timeout=30.0) as client:
        yield client


def keel_only(backend: str, what: str) -> None:
    if backend == "reference":
        pytest.skip(f"Keel-only: {what}")


async def _thread(api: httpx.AsyncClient) -> str:
    return str((await api.post("/threads", json={})).json()["thread_id"])


async def _run(api: httpx.AsyncClient, graph: str, hook: str, **body: Any) -> dict[str, Any]:
    """A run on a new thread that waits for its end; returns it."""
    tid = await _thread(api)
    payload = {"assistant_id": graph, "input": body.pop("input", {}), "webhook": hook, **body}
    r = await api.post(f"/threads/{tid}/runs/wait", json=payload)
    assert r.status_code == 200, r.text
    runs = (await api.get(f"/threads/{tid}/runs")).json()
    return dict(runs[0])


async def _delivery(api: httpx.AsyncClient, run: dict[str, Any], status: str) -> dict[str, Any]:
    """The run's delivery once it has reached `status`."""
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}/webhooks"

    async def fetch() -> list[dict[str, Any]]:
        return list((await api.get(path)).json())

    rows = await poll(fetch, lambda rows: bool(rows) and rows[0]["status"] == status)
    return rows[0]


def _hook(receiver: Receiver, kind: str) -> tuple[str, str]:
    """A URL of `kind` on the receiver, unique to the test; and its path."""
    path = f"/{kind}/{uuid.uuid4().hex}"
    return receiver.url + path, path


# ------------------------------------------------------------------ delivery
async def test_body_is_the_run_with_its_outcome(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    url, path = _hook(receiver, "ok")
    run = await _run(api, "pipeline", url, input={"topic": "tides"})
    [got] = receiver.wait_for(lambda r: len(r) == 1, prefix=path)
    body = got.json()
    assert set(body) == RUN_KEYS | ADDED
    assert body["run_id"] == run["run_id"] and body["thread_id"] == run["thread_id"]
    assert body["status"] == "success"
    assert body["kwargs"]["webhook"] == url
    assert body["values"]["summary"] == "3 steps done"
    assert body["run_started_at"] <= body["run_ended_at"] <= body["webhook_sent_at"]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-deployment"] == "keel-test"  # webhooks.headers, env template filled


async def test_failed_run_body_has_the_error(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    url, path = _hook(receiver, "ok")
    await _run(api, "failing", url, input={"value": "x"})
    [got] = receiver.wait_for(lambda r: len(r) == 1, prefix=path)
    body = got.json()
    assert body["status"] == "error"
    assert body["error"] == {"error": "ValueError", "message": "boom after ok ran"}
    assert set(body) == RUN_KEYS | ADDED | {"error"}


async def test_stateless_run_delivers(api: httpx.AsyncClient, receiver: Receiver) -> None:
    url, path = _hook(receiver, "ok")
    body = {"assistant_id": "pipeline", "input": {"topic": "x"}, "webhook": url}
    r = await api.post("/runs/wait", json=body)
    assert r.status_code == 200, r.text
    [got] = receiver.wait_for(lambda r: len(r) == 1, prefix=path)
    assert got.json()["status"] == "success"
    assert got.json()["kwargs"]["temporary"] is True


async def test_slow_receiver_is_delivered(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    url, path = _hook(receiver, "slow/0.5")
    run = await _run(api, "pipeline", url)
    receiver.wait_for(lambda r: len(r) >= 1 and r[0].answered == 200, prefix=path)
    keel_only(backend, "the delivery status endpoint")
    done = await _delivery(api, run, "delivered")
    assert done["last_status_code"] == 200 and done["delivered_at"] is not None


# ------------------------------------------------------------------ Keel's guarantees
async def test_500_then_200_is_retried_with_the_same_id_and_signed(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    keel_only(backend, "retries with a stable webhook-id and signatures")
    url, path = _hook(receiver, "flaky/1")
    run = await _run(api, "pipeline", url)
    got = receiver.wait_for(lambda r: any(x.answered == 200 for x in r), prefix=path)
    assert [x.answered for x in got] == [500, 200]
    assert len({x.headers["webhook-id"] for x in got}) == 1
    assert all(verify(SECRET, x.headers, x.body) for x in got)
    assert not verify("whsec_" + "A" * 32, got[0].headers, got[0].body)
    done = await _delivery(api, run, "delivered")
    assert done["attempts"] == 2 and done["webhook_id"] == got[0].headers["webhook-id"]


async def test_timing_out_receiver_ends_failed(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    keel_only(backend, "timeouts, the retry window, the status endpoint")
    url, path = _hook(receiver, "hang")
    run = await _run(api, "pipeline", url)
    failed = await _delivery(api, run, "failed")
    assert failed["attempts"] >= 1 and "timed out" in failed["last_error"]
    assert failed["delivered_at"] is None
    assert len(receiver.received(path)) == failed["attempts"]


async def test_redirect_is_never_followed(
    api: httpx.AsyncClient, receiver: Receiver, backend: str
) -> None:
    keel_only(backend, "redirects are not followed (the reference follows them, re-checked)")
    with Receiver() as inside:
        receiver.redirect_to = inside.url + "/internal"
        url, path = _hook(receiver, "redirect")
        run = await _run(api, "pipeline", url)
        path = f"/threads/{run['thread_id']}/runs/{run['run_id']}/webhooks"

        async def fetch() -> list[dict[str, Any]]:
            return list((await api.get(path)).json())

        [row] = await poll(fetch, lambda rows: bool(rows) and bool(rows[0]["last_error"]))
        assert row["status"] in ("pending", "failed") and row["delivered_at"] is None
        assert "redirect" in row["last_error"] and row["last_status_code"] == 302
        assert inside.received() == []


# ------------------------------------------------------------------ the policy (422)
@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://8.8.8.8/hook", "https"),
        ("https://8.8.8.8:9000/hook", "port 9000"),
        ("https://8.8.8.8/" + "a" * 2040, "too long"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://localhost/hook", "localhost"),
        ("/relative/hook", "oopback"),
    ],
)
async def test_policy_refuses_at_creation(strict: httpx.AsyncClient, url: str, detail: str) -> None:
    tid = await _thread(strict)
    body = {"assistant_id": "pipeline", "webhook": url}
    for path in (f"/threads/{tid}/runs", "/runs/wait", "/runs/crons"):
        r = await strict.post(path, json={**body, "schedule": "0 0 * * *"})
        assert r.status_code == 422, (path, r.text)
        assert detail in r.json()["detail"]
    runs = (await strict.get(f"/threads/{tid}/runs")).json()
    assert runs == []


async def test_domain_not_allowed(api: httpx.AsyncClient) -> None:
    tid = await _thread(api)
    body = {"assistant_id": "pipeline", "webhook": "https://8.8.8.8/hook"}
    r = await api.post(f"/threads/{tid}/runs", json=body)
    assert r.status_code == 422 and "domain not allowed" in r.json()["detail"]


async def test_disable_webhooks_runs_but_does_not_call(
    strict: httpx.AsyncClient, backend: str
) -> None:
    run = await _run(strict, "pipeline", "https://8.8.8.8/hook")
    assert run["status"] == "success"
    assert run["kwargs"]["webhook"] == "https://8.8.8.8/hook"
    keel_only(backend, "the delivery status endpoint")
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}/webhooks"
    assert (await strict.get(path)).json() == []
