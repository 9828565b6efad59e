"""A Keel server with the console's test graphs (slow, approval, a HITL agent) on SQLite: the
console only speaks the public API, which the e2e tests cover on every backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
CONFIG: dict[str, Any] = {
    "graphs": {
        "slow": f"{GRAPHS / 'slow.py'}:graph",
        "approval": f"{ROOT / 'examples' / 'agents' / 'approval.py'}:graph",
        "hitl": f"{GRAPHS / 'agents.py'}:hitl_agent",
    },
}


def start(workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> KeelServer:
    """A server on SQLite with this config (`workdir/keel.json`), started."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "keel.json"
    path.write_text(json.dumps(config))
    server = KeelServer(path, workdir, env=env)
    server.start()
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    srv = start(tmp_path_factory.mktemp("console"), CONFIG)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: KeelServer) -> AsyncIterator[Any]:
    sdk = get_client(url=server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()
