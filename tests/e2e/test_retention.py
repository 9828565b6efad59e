"""Retention through a real server on both backends: a server whose config sweeps every ~0.6 s
(`checkpointer.ttl`, Keel's `retention`) deletes expired threads, and answers the replay of a
run whose events were swept with 410. Keel-only (the reference's in-memory server neither sweeps
nor reports TTLs); the waits are bounded polls for the sweep's effect, never timings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from keel import clock
from tests.e2e.helpers import poll
from tests.support.configured import serve_config
from tests.support.reference import ROOT

GRAPHS = ROOT / "tests" / "graphs"
FAST_SWEEPS = 0.01  # minutes
CONFIG = {
    "dependencies": ["."],
    "graphs": {"pipeline": str(ROOT / "examples" / "agents" / "pipeline.py") + ":graph"},
    "checkpointer": {
        "ttl": {"strategy": "delete", "default_ttl": 60, "sweep_interval_minutes": FAST_SWEEPS}
    },
    "retention": {"run_events_minutes": 0, "sweep_interval_minutes": FAST_SWEEPS},
}


@pytest.fixture(scope="module")
def url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if backend == "reference":
        pytest.skip("Keel's retention: the reference neither sweeps nor reports thread TTLs")
    yield from serve_config(backend, request, tmp_path_factory.mktemp(f"ret-{backend}"), CONFIG)


@pytest.fixture
async def client(url: str) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


async def test_a_thread_gets_the_default_ttl_and_its_own_ttl(
    url: str, client: LangGraphClient
) -> None:
    default = await client.threads.create()
    own = await client.threads.create(ttl={"ttl": 5, "strategy": "keep_latest"})
    async with httpx.AsyncClient(base_url=url) as http:
        for thread, minutes, strategy in ((default, 60, "delete"), (own, 5, "keep_latest")):
            got = (await http.get(f"/threads/{thread['thread_id']}?include=ttl")).json()
            assert got["ttl"]["ttl_minutes"] == minutes
            assert got["ttl"]["strategy"] == strategy
            expires = clock.parse(got["ttl"]["expires_at"])
            assert expires == pytest.approx(clock.parse(got["updated_at"]) + minutes * 60, abs=1)
        # PATCH re-arms it with the new TTL.
        patched = await http.patch(f"/threads/{own['thread_id']}", json={"ttl": {"ttl": 7}})
        assert patched.status_code == 200
        got = (await http.get(f"/threads/{own['thread_id']}?include=ttl")).json()
        assert got["ttl"]["ttl_minutes"] == 7
        too_long = await http.patch(f"/threads/{own['thread_id']}", json={"ttl": {"ttl": 1e12}})
        assert too_long.status_code == 422 and "detail" in too_long.json()
        assert (await http.get(f"/threads/{own['thread_id']}")).status_code == 200


async def test_an_expired_thread_is_deleted_by_the_server(
    url: str, client: LangGraphClient
) -> None:
    thread = await client.threads.create(ttl={"ttl": 0.01, "strategy": "delete"})
    tid = thread["thread_id"]

    async with httpx.AsyncClient(base_url=url) as http:
        await poll(lambda: http.get(f"/threads/{tid}"), lambda got: got.status_code == 404)
    kept = await client.threads.create()  # the default TTL (an hour) keeps it
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def test_replay_of_a_run_whose_events_were_swept_is_410(
    url: str, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "pipeline", input={"topic": "t"}, stream_resumable=True
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream"

    async with httpx.AsyncClient(base_url=url) as http:
        answer = await poll(
            lambda: http.get(path, headers={"Last-Event-ID": "-1"}),
            lambda got: got.status_code == 410,
        )
    assert "removed by retention" in answer.json()["detail"]
    # The run and the thread's state are still there.
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]


def test_a_bad_retention_config_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    from tests.e2e.test_cli import keel

    cfg = tmp_path / "langgraph.json"
    cfg.write_text(json.dumps({"graphs": {}, "checkpointer": {"ttl": {"strategy": "archive"}}}))
    done = keel("migrate", "--config", str(cfg), "--database", f"sqlite:///{tmp_path / 'k.db'}")
    assert done.returncode == 2
    assert "checkpointer.ttl.strategy" in done.stderr
