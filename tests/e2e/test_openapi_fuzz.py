"""schemathesis against Keel's own /openapi.json: no request it generates gets a 5xx.

A real server with a custom auth (tests/graphs/auth_fixed_token.py: one fixed bearer token,
owner-only resources), so every request passes authentication and the handler's filters. The run
is bounded and reproducible: deterministic generation (no random seed, no example database), a
fixed number of cases per operation, one worker, and the path ids fixed to rows seeded before
(a thread with a finished run, an assistant, a cron, a checkpoint), so requests reach the routes'
logic instead of stopping at 404; each DELETE gets rows of its own, so the others keep theirs.
The fuzzing phase only (~280 cases per backend, ~10 s): schemathesis's coverage phase adds
~4,600 boundary cases (~20 s per backend), worth running by hand (`--phases coverage,fuzzing`)
after a change to the schemas or the storage, not on every run.

Excluded: `GET /threads/{thread_id}/stream`, which streams until the client goes away (on an
existing thread it would only time out). Nothing else can wait: no run is pending or running
while the fuzzer works (generated runs name assistants that do not exist).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import database_for
from tests.graphs.auth_fixed_token import TOKEN
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 6  # per operation, in the fuzzing phase
NEVER_ENDS = ["/threads/{thread_id}/stream"]
YEARLY = "0 0 1 1 *"
PIPELINE = "pipeline"
# Generation never learns from the server's answers: it stays reproducible, and no generated run
# names a real assistant (a run delayed by `after_seconds` would keep a wait or stream open).
UNLEARNED = """
[phases.coverage]
extra-data-sources = { responses = false }
[phases.fuzzing]
extra-data-sources = { responses = false }
error-feedback = { enabled = false }
"""


def _config(workdir: Path) -> Path:
    config = workdir / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {"pipeline": str(ROOT / "examples" / "agents" / "pipeline.py:graph")},
                "auth": {"path": f"{GRAPHS / 'auth_fixed_token.py'}:auth"},
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def fuzzed(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel's own /openapi.json and config: nothing to compare with the reference")
    workdir = tmp_path_factory.mktemp(f"fuzz-{backend}")
    database = database_for(backend, request, workdir)
    srv = KeelServer(_config(workdir), workdir, database=database)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _seed(url: str) -> dict[str, str]:
    """An assistant, a thread with a finished run (so a checkpoint), a cron, a store item."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=60.0) as http:

        def post(path: str, body: dict[str, Any]) -> Any:
            response = http.post(path, json=body)
            assert response.status_code == 200, response.text
            return response.json()

        assistant = post("/assistants", {"graph_id": "pipeline"})["assistant_id"]
        thread = post("/threads", {})["thread_id"]
        run = post(f"/threads/{thread}/runs", {"assistant_id": PIPELINE, "input": {}})
        http.get(f"/threads/{thread}/runs/{run['run_id']}/join").raise_for_status()
        state = http.get(f"/threads/{thread}/state").json()
        cron = post(f"/threads/{thread}/runs/crons", {"assistant_id": PIPELINE, "schedule": YEARLY})
        put = http.put("/store/items", json={"namespace": ["fuzz"], "key": "k", "value": {"a": 1}})
        assert put.status_code == 204, put.text
    return {
        "assistant_id": assistant,
        "thread_id": thread,
        "run_id": run["run_id"],
        "checkpoint_id": state["checkpoint"]["checkpoint_id"],
        "cron_id": cron["cron_id"],
    }


def _toml(ids: dict[str, str]) -> str:
    return "\n".join(f'"path.{name}" = "{value}"' for name, value in ids.items())


def _settings(workdir: Path, url: str) -> Path:
    """schemathesis.toml: the token, the seeded ids, and disposable ones for each DELETE."""
    shared = _seed(url)
    lines = [f'headers = {{ Authorization = "Bearer {TOKEN}" }}', UNLEARNED]
    lines += ["[parameters]", _toml(shared)]
    deletes = {
        "/assistants/{assistant_id}": ("assistant_id",),
        "/threads/{thread_id}": ("thread_id",),
        "/runs/crons/{cron_id}": ("cron_id",),
        "/threads/{thread_id}/runs/{run_id}": ("thread_id", "run_id"),
    }
    for path, names in deletes.items():
        own = _seed(url)
        lines += ["[[operations]]", f'include-path = "{path}"', 'include-method = "DELETE"']
        lines += ["[operations.parameters]", _toml({n: own[n] for n in names})]
    settings = workdir / "schemathesis.toml"
    settings.write_text("\n".join(lines) + "\n")
    return settings


def test_no_generated_request_gets_a_server_error(fuzzed: KeelServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, fuzzed.url)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(settings),
        "run",
        f"{fuzzed.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--no-color",
        *(arg for path in NEVER_ENDS for arg in ("--exclude-path", path)),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=110, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    failures = out[out.find("FAILURES") : out.find("SUMMARY")] if "FAILURES" in out else out
    assert proc.returncode == 0, failures[-12000:] + "\n" + fuzzed.logs()[-4000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated is not None and int(generated.group(1)) >= 100, out[-3000:]


# ------------------------------------------------------------- what the fuzzer found (5xx before)
BIG = 2**63  # one past the largest integer SQLite and PostgreSQL hold (JSON parses it)
BAD_KEYS = ['a"b', "a\\b", "a\x00b"]


@pytest.fixture
async def api(fuzzed: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fuzzed.url, headers=AUTH, timeout=60.0) as http:
        yield http


async def _thread(api: httpx.AsyncClient) -> str:
    response = await api.post("/threads", json={})
    assert response.status_code == 200, response.text
    thread_id: str = response.json()["thread_id"]
    return thread_id


@pytest.mark.parametrize("key", BAD_KEYS, ids=["quote", "backslash", "nul"])
@pytest.mark.parametrize("path", ["/threads/search", "/assistants/search", "/runs/crons/count"])
async def test_a_metadata_filter_key_a_json_path_cannot_hold_is_bad_input(
    api: httpx.AsyncClient, backend: str, path: str, key: str
) -> None:
    """SQLite filters through JSON paths (`$."key"`), which cannot hold a quote, a backslash or
    a NUL; PostgreSQL passes keys as parameters, but its text cannot hold a NUL."""
    response = await api.post(path, json={"metadata": {key: 1}})
    if backend == "postgres" and key != "a\x00b":
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 422, response.text
        assert "unsupported filter key" in response.json()["detail"] or "NUL" in response.text


async def test_text_with_a_nul_is_kept_on_sqlite_and_refused_on_postgres(
    api: httpx.AsyncClient, backend: str
) -> None:
    response = await api.post("/threads", json={"metadata": {"note": "a\x00b"}})
    if backend == "sqlite":
        assert response.status_code == 200, response.text
        assert response.json()["metadata"]["note"] == "a\x00b"
    else:
        assert response.status_code == 422, response.text
        assert "NUL character" in response.json()["detail"]


async def test_a_history_filter_key_the_sqlite_saver_refuses_is_bad_input(
    api: httpx.AsyncClient, backend: str
) -> None:
    thread_id = await _thread(api)
    ran = await api.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": PIPELINE})
    assert ran.status_code == 200, ran.text  # the thread has checkpoints now
    response = await api.post(f"/threads/{thread_id}/history", json={"metadata": {"a b": 1}})
    expected = 422 if backend == "sqlite" else 200
    assert response.status_code == expected, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/threads/{thread_id}/history", {"metadata": {"note": "a\x00b"}}),
        ("/threads/{thread_id}/state/checkpoint", {"checkpoint": {"checkpoint_ns": "a\x00b"}}),
    ],
    ids=["history-filter", "checkpoint-namespace"],
)
async def test_a_nul_that_reaches_the_checkpointer_is_bad_input_on_postgres(
    api: httpx.AsyncClient, backend: str, path: str, body: dict[str, Any]
) -> None:
    thread_id = await _thread(api)
    ran = await api.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": PIPELINE})
    assert ran.status_code == 200, ran.text
    response = await api.post(path.format(thread_id=thread_id), json=body)
    if backend == "postgres":
        assert response.status_code == 422, response.text
        assert "NUL character" in response.json()["detail"]
    else:
        assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/threads/{thread_id}/runs", {"assistant_id": PIPELINE, "after_seconds": 1e12}),
        ("get", "/threads/{thread_id}/runs?limit=-1", None),
        ("get", f"/threads/{{thread_id}}/runs?offset={BIG}", None),
        ("post", "/threads/search", {"offset": BIG}),
        ("post", "/assistants/search", {"offset": BIG}),
        ("post", "/assistants/{assistant_id}/versions", {"limit": BIG}),
        ("post", "/assistants/{assistant_id}/latest", {"version": BIG}),
        ("post", "/store/items/search", {"offset": BIG}),
    ],
    ids=[
        "after_seconds",
        "runs-limit",
        "runs-offset",
        "threads-offset",
        "assistants-offset",
        "versions-limit",
        "latest-version",
        "store-offset",
    ],
)
async def test_numbers_out_of_range_are_bad_input(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    created = await api.post("/assistants", json={"graph_id": PIPELINE})
    assert created.status_code == 200, created.text
    url = path.format(thread_id=await _thread(api), assistant_id=created.json()["assistant_id"])
    response = await api.request(method, url, json=body)
    assert response.status_code == 422, response.text
