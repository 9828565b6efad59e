"""With organisations on, a graph factory that reads the store while it builds sees its caller's
organisation's items only: for a run, and for the state reads and updates that build the graph
too (Keel-only: organisations are built-in auth)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import database_for
from tests.support.auth_servers import AUTH, GRAPHS, raw_as
from tests.support.server import KeelServer

pytestmark = pytest.mark.backends("sqlite", "postgres")


@pytest.fixture(scope="module")
def rig(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp(f"factory-store-{backend}")
    config = workdir / "langgraph.json"
    graphs = {"store_factory": f"{GRAPHS / 'store_factory.py'}:make_graph"}
    auth = {"path": AUTH, "api_keys": True}
    config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "auth": auth}))
    log = workdir / "factory.log"
    database = database_for(backend, request, workdir)
    srv = KeelServer(config, workdir, database=database, env={"KEEL_TEST_FACTORY_LOG": str(log)})
    srv.start()
    try:
        yield srv.url, log
    finally:
        srv.stop()


async def test_a_factory_reads_its_callers_organisation_store(rig: tuple[str, Path]) -> None:
    url, log = rig
    async with raw_as(url, "ann") as ann, raw_as(url, "gus") as gus:
        for client, text in ((ann, "acme-note"), (gus, "globex-note")):
            put = {"namespace": ["notes"], "key": "k", "value": {"text": text}}
            assert (await client.put("/store/items", json=put)).status_code == 204
        thread = (await ann.post("/threads", json={})).json()["thread_id"]
        run = {"assistant_id": "store_factory", "input": {}}
        assert (await ann.post(f"/threads/{thread}/runs/wait", json=run)).status_code == 200
        log.write_text("")  # from here: the builds of state reads and updates only
        assert (await ann.get(f"/threads/{thread}/state")).status_code == 200
        assert (await ann.post(f"/threads/{thread}/history", json={})).status_code == 200
        update = {"values": {"n": 5}}
        assert (await ann.post(f"/threads/{thread}/state", json=update)).status_code == 200
    builds = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert {context for context, _ in builds} >= {"threads.read", "threads.update"}
    assert all(json.loads(texts) == ["acme-note"] for _, texts in builds), builds
