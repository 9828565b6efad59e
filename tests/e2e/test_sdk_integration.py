"""The langgraph-sdk's own integration suite, run against a real Keel server.

The suite is not vendored: the `langgraph-sdk` sdist (which ships `integration/langgraph.json`,
`integration/graph/` and `tests/integration/`) is fetched from the package registry into the
repo's ignored `.cache/` folder on first use. Keel serves the sdist's `langgraph.json` unchanged,
and the suite runs in a subprocess with `LANGGRAPH_INTEGRATION_URL` pointing at Keel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import database_for
from tests.support.server import KeelServer

SDK_VERSION = "0.4.14"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "langgraph-sdk-integration"
SUITE_TIMEOUT = 900.0

# The "v3" thread-centric streaming protocol (`client.threads.stream(...)`: POST
# /threads/{id}/commands, /threads/{id}/stream/events, the websocket transport) is not served by
# Keel yet. Tests that need it are deselected by name, each with its reason.
V3 = "needs the v3 thread-streaming protocol (threads.stream: /commands, /stream/events)"
DESELECT: dict[str, str] = {
    "test_cancel.py::test_cancel_async": V3,
    "test_cancel.py::test_cancel_sync": V3,
    "test_concurrent.py::test_concurrent_streams_async": V3,
    "test_concurrent.py::test_concurrent_streams_sync": V3,
    "test_extensions.py::test_extensions_async": V3,
    "test_extensions.py::test_extensions_sync": V3,
    "test_helpers.py::test_get_tree_and_extensions_cache_async": V3,
    "test_helpers.py::test_get_tree_and_extensions_cache_sync": V3,
    "test_lifecycle.py::test_lifecycle_async": V3,
    "test_lifecycle.py::test_lifecycle_sync": V3,
    "test_messages.py::test_messages_async": V3,
    "test_messages.py::test_messages_sync": V3,
    "test_reconnect.py::test_close_mid_iteration_async": V3,
    "test_reconnect.py::test_close_mid_iteration_sync": V3,
    "test_remote_graph_v3.py::test_async_happy_path_yields_output": V3 + " via RemoteGraph",
    "test_remote_graph_v3.py::test_async_interrupt_path_surfaces_interrupts": V3
    + " via RemoteGraph",
    "test_remote_graph_v3.py::test_async_resume_after_interrupt": V3 + " via RemoteGraph",
    "test_remote_graph_v3.py::test_sync_happy_path_yields_output": V3 + " via RemoteGraph",
    "test_remote_graph_v3.py::test_abort_mid_run_cancels_server_side": V3 + " via RemoteGraph",
    "test_subgraphs.py::test_subgraphs_agent_async": V3,
    "test_subgraphs.py::test_subgraphs_agent_sync": V3,
    "test_subgraphs.py::test_subgraphs_deep_agent_async": V3,
    "test_subgraphs.py::test_subgraphs_deep_agent_sync": V3,
    "test_threads_crud.py::test_threads_history_after_run_async": V3 + " to produce history",
    "test_threads_crud.py::test_threads_history_after_run_sync": V3 + " to produce history",
    "test_tools.py::test_tools_async": V3,
    "test_tools.py::test_tools_sync": V3,
    "test_update_state.py::test_update_state_async": V3,
    "test_update_state.py::test_update_state_sync": V3,
    "test_values.py::test_values_async": V3,
    "test_values.py::test_values_sync": V3,
    "test_websocket.py::test_websocket_async": V3 + " over websocket",
    "test_websocket.py::test_websocket_sync": V3 + " over websocket",
}


def _download_sdist(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", f"langgraph-sdk=={SDK_VERSION}", "-d", str(dest),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return dest / f"langgraph_sdk-{SDK_VERSION}.tar.gz"


def sdk_suite() -> Path:
    """The unpacked sdist (downloaded once, then reused from `.cache/`)."""
    root = CACHE / f"langgraph_sdk-{SDK_VERSION}"
    if (root / "tests" / "integration" / "conftest.py").is_file():
        return root
    archive = CACHE / f"langgraph_sdk-{SDK_VERSION}.tar.gz"
    if not archive.is_file():
        archive = _download_sdist(CACHE)
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return root


def _counts(output: str) -> dict[str, int]:
    lines = [ln for ln in output.splitlines() if re.search(r"\d+ (passed|failed|deselected)", ln)]
    summary = lines[-1] if lines else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


@pytest.fixture
def sdk_server(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[KeelServer]:
    suite = sdk_suite()
    database = database_for(backend, request, tmp_path)
    server = KeelServer(
        suite / "integration" / "langgraph.json", tmp_path / "keel", database=database
    )
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(SUITE_TIMEOUT + 180)
def test_sdk_integration_suite(sdk_server: KeelServer) -> None:
    suite = sdk_suite()
    deselect = [f"--deselect=tests/integration/{name}" for name in DESELECT]
    cmd = [
        sys.executable, "-m", "pytest", "-m", "integration", "tests/integration",
        "-p", "no:cacheprovider", "-q", "--timeout", "120", *deselect,
    ]  # fmt: skip
    env = {**os.environ, "LANGGRAPH_INTEGRATION_URL": sdk_server.url}
    proc = subprocess.run(
        cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT
    )
    output = proc.stdout + proc.stderr
    counts = _counts(output)
    print(
        f"langgraph-sdk {SDK_VERSION} integration suite: {counts.get('passed', 0)} passed, "
        f"{counts.get('failed', 0)} failed, {counts.get('deselected', 0)} deselected"
    )
    assert proc.returncode == 0, f"SDK integration suite failed:\n{output}\n{sdk_server.logs()}"
    assert counts.get("passed", 0) > 0, output
    assert counts.get("deselected", 0) == len(DESELECT), "a deselected test was renamed or removed"
