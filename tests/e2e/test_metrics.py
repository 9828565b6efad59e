"""`GET /metrics` on a real server, on both backends: counters move by exactly the runs made (a
failed run counted as failed), the database's gauges show the queue and the runs in flight, an
open SSE stream is counted, `http.disable_metrics` is a 404, and with auth on a scrape
authenticates unless `http.metrics_public`. The text is parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import Client, poll, run_status
from tests.graphs.auth_fixed_token import TOKEN
from tests.support.configured import serve_keel
from tests.support.gate import Gate
from tests.support.receiver import Receiver
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
CONFIG: dict[str, Any] = {
    "graphs": {
        "echo": f"{GRAPHS / 'config_echo.py'}:graph",
        "failing": f"{GRAPHS / 'failing.py'}:graph",
        "slow": f"{GRAPHS / 'slow.py'}:graph",
    },
    "webhooks": {
        "url": {"disable_loopback": False, "require_https": False},
        "retry": {"initial_seconds": 0.1, "max_seconds": 0.2, "window_seconds": 30},
    },
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str, **headers: str) -> Samples:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel's own metrics")
    yield from serve_keel(backend, request, tmp_path_factory.mktemp(f"metrics-{backend}"), CONFIG)


@pytest.fixture
async def client(server: KeelServer) -> AsyncIterator[Client]:
    sdk = get_client(url=server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


async def test_counters_move_by_exactly_the_runs_made(server: KeelServer, client: Client) -> None:
    before = await scrape(server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    runs = [await client.runs.create(tid, "echo", input={}) for _ in range(3)]
    failed = await client.runs.create(tid, "failing", input={})
    for run in [*runs, failed]:
        await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, failed["run_id"]))["status"] == "error"
    after = await scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("keel_runs_created_total", graph="echo") == 3
    assert moved("keel_runs_claimed_total", graph="echo") == 3
    assert moved("keel_runs_finished_total", graph="echo", status="success") == 3
    assert moved("keel_run_duration_seconds_count", graph="echo", status="success") == 3
    assert moved("keel_run_queue_wait_seconds_count", graph="echo") == 3
    assert moved("keel_runs_created_total", graph="failing") == 1
    assert moved("keel_runs_finished_total", graph="failing", status="error") == 1
    assert moved("keel_runs_finished_total", graph="failing", status="success") == 0
    assert moved("keel_runs_recovered_total", graph="echo") == 0
    # Every event the four runs logged, as their replays read them back.
    logged = 0
    for run in [*runs, failed]:
        async for _ in client.runs.join_stream(tid, run["run_id"], last_event_id="-1"):
            logged += 1
    assert moved("keel_run_events_written_total") == logged > 0


async def test_store_searches_are_timed(server: KeelServer, client: Client) -> None:
    before = await scrape(server.url)
    await client.store.put_item(["metrics"], "a", {"text": "hello"})
    await client.store.search_items(["metrics"])
    await client.store.search_items(["metrics"], filter={"text": "hello"})
    after = await scrape(server.url)
    name = "keel_store_search_seconds_count"
    assert value(after, name, kind="filter") - value(before, name, kind="filter") == 2


async def test_database_gauges_show_the_queue_and_the_runs_in_flight(
    server: KeelServer, client: Client, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    busy = (await client.threads.create())["thread_id"]
    other = (await client.threads.create())["thread_id"]
    held = await client.runs.create(busy, "slow", input={"delay": 0}, config=gate.config)
    await run_status(client, busy, held["run_id"], "running")
    queued = await client.runs.create(busy, "slow", input={"delay": 0}, config=gate.config)
    later = await client.runs.create(other, "slow", input={}, after_seconds=3600)
    samples = await scrape(server.url)
    assert value(samples, "keel_runs", status="running", graph="slow") == 1
    assert value(samples, "keel_runs", status="pending", graph="slow") == 2
    assert value(samples, "keel_queue_depth", graph="slow") == 1  # the delayed run is not due
    assert value(samples, "keel_queue_oldest_wait_seconds", graph="slow") >= 0
    assert value(samples, "keel_runs_lease_overdue", graph="slow") == 0
    assert value(samples, "keel_runs_executing") == 1
    if server.database.startswith("postgresql"):
        pooled = [value(samples, "keel_db_pool_connections", state=s) for s in ("in_use", "idle")]
        assert sum(pooled) >= 1  # the pool holds connections (this scrape's is idle again)
        assert value(samples, "keel_db_pool_max_connections") == 20  # the default pool size
        assert value(samples, "keel_db_query_seconds_count") > 0
    else:
        assert ("keel_db_pool_max_connections", frozenset()) not in samples
        assert value(samples, "keel_db_query_seconds_count") == 0  # not timed on SQLite

    await client.runs.cancel(other, later["run_id"])
    gate.open()
    for run in (held, queued):
        await client.runs.join(busy, run["run_id"])
    samples = await scrape(server.url)
    for status in ("pending", "running"):
        assert value(samples, "keel_runs", status=status, graph="slow") == 0
    assert value(samples, "keel_queue_depth", graph="slow") == 0
    assert value(samples, "keel_runs_executing") == 0


async def _first_chunk(response: httpx.Response, got: asyncio.Event) -> None:
    async for _ in response.aiter_bytes():
        got.set()


async def test_an_open_sse_stream_is_a_subscriber(
    server: KeelServer, client: Client, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0}, config=gate.config)
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    http = httpx.AsyncClient(base_url=server.url, timeout=30.0)
    async with http, http.stream("GET", path) as response:
        got = asyncio.Event()
        reader = asyncio.create_task(_first_chunk(response, got))
        await asyncio.wait_for(got.wait(), 30)  # an event arrived: the stream is open
        samples = await scrape(server.url)
        assert value(samples, "keel_sse_subscribers") == 1
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    gate.open()
    await client.runs.join(tid, run["run_id"])
    await poll(lambda: scrape(server.url), lambda s: value(s, "keel_sse_subscribers") == 0)


async def test_webhook_calls_are_counted_by_outcome(server: KeelServer, client: Client) -> None:
    before = await scrape(server.url)
    with Receiver() as receiver:  # answers 500 once, then 200
        tid = (await client.threads.create())["thread_id"]
        hook = f"{receiver.url}/flaky/1/{tid}"
        await client.runs.wait(tid, "echo", input={}, webhook=hook)
        name = "keel_webhook_attempts_total"

        def moved(samples: Samples, outcome: str) -> float:
            return value(samples, name, outcome=outcome) - value(before, name, outcome=outcome)

        after = await poll(lambda: scrape(server.url), lambda s: moved(s, "delivered") > 0)
    assert (moved(after, "delivered"), moved(after, "retry"), moved(after, "failed")) == (1, 1, 0)
    timed = "keel_webhook_attempt_seconds_count"
    assert value(after, timed) - value(before, timed) == 2


# ------------------------------------------------------------- switches and auth
@pytest.fixture(scope="module")
def disabled(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    config = {**CONFIG, "http": {"disable_metrics": True}}
    yield from serve_keel(backend, request, tmp_path_factory.mktemp("metrics-off"), config)


@pytest.mark.backends("sqlite")  # a setting at the edge: one backend is enough
async def test_disabled_metrics_are_a_404(disabled: KeelServer) -> None:
    async with httpx.AsyncClient(base_url=disabled.url, timeout=30.0) as http:
        response = await http.get("/metrics")
        assert response.status_code == 404
        assert "detail" in response.json()
        run = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {}})
        assert run.status_code == 200  # runs go on, unrecorded


def _authed(public: bool) -> dict[str, Any]:
    auth = {"path": f"{GRAPHS / 'auth_fixed_token.py'}:auth"}
    return {**CONFIG, "auth": auth, "http": {"metrics_public": public}}


@pytest.fixture(scope="module")
def authed(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    yield from serve_keel(backend, request, tmp_path_factory.mktemp("metrics-auth"), _authed(False))


@pytest.fixture(scope="module")
def public(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    yield from serve_keel(backend, request, tmp_path_factory.mktemp("metrics-pub"), _authed(True))


@pytest.mark.backends("sqlite")  # a setting at the edge: one backend is enough
async def test_with_auth_a_scrape_authenticates(authed: KeelServer) -> None:
    async with httpx.AsyncClient(base_url=authed.url, timeout=30.0) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401 and "detail" in refused.json()
    samples = await scrape(authed.url, authorization=f"Bearer {TOKEN}")
    assert ("keel_runs_executing", frozenset()) in samples


@pytest.mark.backends("sqlite")  # a setting at the edge: one backend is enough
async def test_metrics_public_opens_only_the_metrics(public: KeelServer) -> None:
    samples = await scrape(public.url)
    assert ("keel_runs_executing", frozenset()) in samples
    async with httpx.AsyncClient(base_url=public.url, timeout=30.0) as http:
        assert (await http.post("/threads/search", json={})).status_code == 401
