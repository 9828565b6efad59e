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
# `-p keel_sdk_suite`: points the one module that hard-codes localhost:2024 at Keel's port.
PLUGIN_DIR = Path(__file__).resolve().parent / "sdk_suite_plugin"
SUITE_TIMEOUT = 900.0

# Keel serves the "v3" thread-centric protocol, SSE and WebSocket (docs/thread-stream.md).
# Tests that still cannot pass here are deselected by name, each with its reason.
# Measured 2026-12-01, the four run together repeatedly: against Keel one of them failed in 3
# runs of 8; against the reference (langgraph-api 0.16.7) one or two failed in each of 4 runs.
RACY = (
    "races in the SDK itself: the interrupt that ends the projection arrives on the lifecycle "
    "watcher's own SSE stream, possibly before the projection's stream delivered the events "
    "preceding it (the faster the run reaches its interrupt, the likelier); fails against the "
    "reference as well (langgraph-api 0.16.7)"
)
DESELECT: dict[str, str] = {
    "test_extensions.py::test_extensions_async": RACY,
    "test_extensions.py::test_extensions_sync": RACY,
    "test_messages.py::test_messages_async": RACY,
    "test_messages.py::test_messages_sync": RACY,
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
        "-p", "no:cacheprovider", "-p", "keel_sdk_suite", "-q", "--timeout", "120", *deselect,
    ]  # fmt: skip
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "LANGGRAPH_INTEGRATION_URL": sdk_server.url, "PYTHONPATH": path}
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
