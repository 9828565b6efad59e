"""Shared fixtures: a real Keel server with the test graphs, per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import KeelServer

GRAPHS_CONFIG = Path(__file__).parent / "graphs" / "keel.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    # No model configured, whatever the environment says: the chat example must explain itself.
    srv = KeelServer(GRAPHS_CONFIG, tmp_path_factory.mktemp("keel"), env={"KEEL_MODEL": ""})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
