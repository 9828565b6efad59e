"""Several hosts on PostgreSQL (docs/sandbox.md "Several hosts"): one API process and two
`keel worker` processes standing for two machines, each with its own `KEEL_SANDBOX_ROOT`, on one
database. Only one worker runs at a time, so the test decides which host executes each run.
Keel-only by nature (PostgreSQL, two hosts, Keel's sandbox config): not run against the
reference."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import PgCluster
from tests.support.sandbox import traversable_dir
from tests.support.server import KeelServer, KeelWorker

LEASE = "1.5"  # seconds: a killed host's run is taken over quickly
CAP = 64 << 10


@pytest.fixture
def roots() -> Iterator[Path]:
    """Under /tmp, traversable by the sandbox's user (docs/sandbox.md)."""
    with traversable_dir("keel-hosts-") as base:
        yield base


def config(workdir: Path) -> Path:
    graph = GRAPHS_CONFIG.parent / "workspace.py"
    path = workdir / "keel.json"
    workdir.mkdir(parents=True, exist_ok=True)
    sandbox = {"sync_max_bytes": CAP, "wall_seconds": 90}
    path.write_text(json.dumps({"graphs": {"workspace": f"{graph}:graph"}, "sandbox": sandbox}))
    return path


def wait_for_file(path: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


async def test_a_thread_moves_between_hosts_with_its_workspace(
    pg_cluster: PgCluster, tmp_path: Path, roots: Path
) -> None:
    database = pg_cluster.create_database()
    cfg = config(tmp_path)
    env = {"KEEL_LEASE_SECONDS": LEASE, "KEEL_SHUTDOWN_GRACE_SECONDS": "1"}
    api = KeelServer(cfg, tmp_path / "api", database=database, env=env, extra_args=["--no-workers"])
    host = {
        name: KeelWorker(
            cfg, tmp_path / name, database, env={**env, "KEEL_SANDBOX_ROOT": str(roots / name)}
        )
        for name in ("a", "b")
    }
    api.start()
    client = get_client(url=api.url, api_key=None)
    try:
        tid = (await client.threads.create())["thread_id"]

        async def run(cmd: str, **more: Any) -> dict[str, Any]:
            out = await client.runs.wait(tid, "workspace", input={"cmd": cmd, **more})
            assert isinstance(out, dict)
            return out

        host["a"].start()
        assert (await run("mkdir src && echo from-a > src/note"))["exit_code"] == 0
        host["a"].stop()
        host["b"].start()  # the next run lands on host B: the file came through the database
        out = await run("cat src/note && echo from-b > src/reply")
        assert out["stdout"] == "from-a\n"
        host["b"].stop()
        host["a"].start()  # and B's change is back on A, whose copy was one version behind
        assert (await run("cat src/reply"))["stdout"] == "from-b\n"

        # Host A dies mid-command: its change was never published; B resumes the run from the
        # last published snapshot and runs the command again.
        pending = await client.runs.create(
            tid,
            "workspace",
            input={"cmd": "cat src/reply; echo lost > src/reply", "hang_on": str(roots / "a")},
        )
        wait_for_file(roots / "a" / tid / "started")
        host["a"].kill9()
        host["b"].start()
        await client.runs.join(tid, pending["run_id"])
        state: Any = await client.threads.get_state(tid)
        assert state["values"]["stdout"] == "from-b\n"

        # Over sandbox.sync_max_bytes: the command's result is kept, the agent sees why the
        # workspace stayed on this host.
        out = await run(f"head -c {2 * CAP} /dev/zero > big; echo made")
        assert out["stdout"] == "made\n"
        assert "sandbox.sync_max_bytes" in out["error"]
    finally:
        await client.aclose()
        for worker in host.values():
            worker.stop()
        api.stop()
