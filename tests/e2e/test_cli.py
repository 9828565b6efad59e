"""The `keel` command: clear failures for a taken port, a locked database, a bad config."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.support.reference import ROOT
from tests.support.server import KeelServer, free_port


def keel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_taken_port_is_an_error_not_another_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        db = f"sqlite:///{tmp_path / 'k.db'}"
        done = keel("serve", "--config", str(GRAPHS_CONFIG), "--port", str(port), "--database", db)
    assert done.returncode != 0
    assert f"port {port}" in done.stderr and "already in use" in done.stderr


def test_second_server_on_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    first = KeelServer(GRAPHS_CONFIG, tmp_path / "one")
    first.start()
    try:
        done = keel(
            "serve",
            "--config",
            str(GRAPHS_CONFIG),
            "--port",
            str(free_port()),
            "--database",
            first.database,
        )
        assert done.returncode != 0
        assert "in use by another Keel process" in done.stdout + done.stderr
        assert httpx.get(first.url + "/ok").json() == {"ok": True}
    finally:
        first.stop()


def test_unsupported_config_key_names_it(tmp_path: Path) -> None:
    cfg = tmp_path / "langgraph.json"
    cfg.write_text(json.dumps({"graphs": {}, "ui": {"agent": "./ui.tsx"}}))
    done = keel("migrate", "--config", str(cfg), "--database", f"sqlite:///{tmp_path / 'k.db'}")
    assert done.returncode == 2
    assert "'ui'" in done.stderr


def test_broken_graph_path_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.json"
    cfg.write_text(json.dumps({"graphs": {"g": "./missing.py:graph"}}))
    srv = KeelServer(cfg, tmp_path / "srv")
    try:
        srv.start(timeout=60)
        raise AssertionError("server started with a missing graph file")
    except RuntimeError as exc:
        assert "missing.py" in str(exc)
    finally:
        srv.stop()


def test_migrate_creates_schema(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    done = keel("migrate", "--config", str(GRAPHS_CONFIG), "--database", f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    import sqlite3

    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert {"runs", "threads", "assistants", "run_events", "checkpoints", "writes"} <= tables


GRAPH_SOURCE = """
from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    answer: str


def node(state: State) -> State:
    return {"answer": "ANSWER"}


builder = StateGraph(State)
builder.add_node("node", node)
builder.add_edge(START, "node")
graph = builder.compile()
"""


def _answer(url: str) -> str | None:
    try:
        body = {"assistant_id": "agent", "input": {}}
        res = httpx.post(url + "/runs/wait", json=body, timeout=60.0)
    except httpx.HTTPError:
        return None
    if res.status_code != 200:
        return None
    value = res.json().get("answer")
    return str(value) if value is not None else None


def _poll_answer(url: str, want: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answer(url) == want:
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def keel_dev(project: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`keel dev` serving `project` (output to `log`, `env` added), its URL; stopped after, with
    the child it reloads (the whole process group)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel.cli", "dev", "--port", str(port)],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


# What `langgraph new --template new-langgraph-project-python` writes: a `$schema` for editors, a
# `.env` it does not ship, a build key.
TEMPLATE_CONFIG = {
    "$schema": "https://langgra.ph/schema.json",
    "dependencies": ["."],
    "graphs": {"agent": "./src/agent/graph.py:graph"},
    "env": ".env",
    "image_distro": "wolfi",
}


@pytest.mark.timeout(240)  # two waits of at most 90 s each
def test_dev_runs_the_template_project_and_reloads_on_code_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    graph_file = project / "src" / "agent" / "graph.py"
    graph_file.parent.mkdir(parents=True)
    graph_file.write_text(GRAPH_SOURCE.replace("ANSWER", "first"))
    (project / "langgraph.json").write_text(json.dumps(TEMPLATE_CONFIG))
    log = tmp_path / "dev.log"  # outside the watched folder
    # The default database: .keel/keel.db inside the project, under the file watcher.
    with keel_dev(project, log) as url:
        assert _poll_answer(url, "first", 90), f"dev server never answered:\n{log.read_text()}"
        for _ in range(3):  # runs write the database, its -wal and -shm files
            assert _answer(url) == "first"
        graph_file.write_text(GRAPH_SOURCE.replace("ANSWER", "second"))
        assert _poll_answer(url, "second", 90), "dev server did not reload the changed graph"
    text = log.read_text()
    assert "Reloading..." in text, text
    # The graph file is the one change the watcher reported before reloading: the database
    # writes of the runs before it were not reported (they were, as "N changes detected").
    reported = re.findall(r"(\d+) changes? detected", text.split("Reloading...")[0])
    assert reported == ["1"], text
    # The config's warnings are printed once: not by the reloading child, not after the reload.
    assert text.count(f"env file {str(project / '.env')!r} not found") == 1, text
    assert text.count("'image_distro' is a build concern") == 1, text
    assert "$schema" not in text, text


LOGGING_GRAPH = GRAPH_SOURCE.replace(
    "def node(state: State) -> State:\n",
    "def node(state: State) -> State:\n    logging.getLogger('tests.dev').warning('answering')\n",
).replace("from typing import TypedDict", "import logging\nfrom typing import TypedDict")


@pytest.mark.timeout(150)
def test_dev_logs_json_from_the_reloading_child_too(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "graph.py").write_text(LOGGING_GRAPH.replace("ANSWER", "json"))
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"agent": "./graph.py:graph"}}))
    log = tmp_path / "dev.log"
    with keel_dev(project, log, {"KEEL_LOG_FORMAT": "json"}) as url:
        assert _poll_answer(url, "json", 90), f"dev server never answered:\n{log.read_text()}"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    messages = {line["message"] for line in lines}
    assert f"Keel listening on {url}" in messages  # the parent's
    assert "Application startup complete." in messages  # uvicorn's, in the child
    run_lines = [line for line in lines if line["logger"] == "tests.dev"]
    assert run_lines and all(line.get("run_id") for line in run_lines), run_lines  # the graph's


def test_scripts_dev_checks_the_port_before_installing(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"  # a copy: its .venv would land in tmp_path
    scripts.mkdir()
    for name in ("dev", "_venv.sh"):
        shutil.copy2(ROOT / "scripts" / name, scripts / name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run(
            [str(scripts / "dev"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "--port" in done.stderr, done.stderr
    assert not (tmp_path / ".venv").exists(), "installed before checking the port"


def test_broken_custom_app_stops_the_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = 42\n")
    cfg = tmp_path / "langgraph.json"
    cfg.write_text(json.dumps({"graphs": {}, "http": {"app": "./app.py:app"}}))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    done = keel("serve", "--config", str(cfg), "--port", str(free_port()), "--database", db)
    assert done.returncode == 2
    assert "http.app" in done.stderr and "not a Starlette or FastAPI application" in done.stderr
