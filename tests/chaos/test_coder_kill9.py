"""kill -9 while an approved sandbox command is running (Keel-only: the sandbox and process deaths),
on both backends. The coder agent (tests/graphs/coder_command.py over examples/agents/coder.py)
runs, after approval, a command that appends a line to `log` in the workspace and then waits, by
construction, until the test creates `go` there from the host. The test kills the server once the
line is there, restarts it (same database, same workspace root) and writes `go`: the recovered
run executes the command again (a command in flight at a crash is re-run: two lines) and ends
with the right final state (docs/sandbox.md, "A command in flight at a crash")."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.e2e.helpers import Client, poll
from tests.e2e.test_coder import APPROVE, CONFIG
from tests.support.forkserver import ForkedKeel, ForkServer, restartable_port
from tests.support.sandbox import traversable_dir

# Appends its line, then waits for `go` (at most 45 s, under the 60 s wall time), then reports.
COMMAND = (
    "echo started >> log; i=0; "
    "while [ ! -e go ] && [ $i -lt 450 ]; do sleep 0.1; i=$((i+1)); done; "
    'echo "lines: $(wc -l < log)"'
)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    """One pre-imported zygote for the module's server starts (tests/support/forkserver.py)."""
    zygote = ForkServer()
    try:
        yield zygote
    finally:
        zygote.close()


async def test_a_command_in_flight_at_a_crash_is_run_again(
    database_url: str, tmp_path: Path, forks: ForkServer
) -> None:
    with traversable_dir("keel-coder-kill9-") as base:
        config = tmp_path / "keel.json"
        config.write_text(json.dumps({**CONFIG, "sandbox": {"wall_seconds": 60}}))
        env = {**os.environ, "KEEL_LOG_LEVEL": "warning", "KEEL_SANDBOX_ROOT": str(base / "ws")}
        port = restartable_port()
        argv = ["serve", "--config", str(config), "--port", str(port), "--database", database_url]
        url = f"http://127.0.0.1:{port}"
        server = ForkedKeel("server", forks, argv, env, tmp_path / "logs", url=url)
        server.start()
        try:
            sdk: Client = get_client(url=server.url, api_key=None)
            tid = (await sdk.threads.create())["thread_id"]
            ask = {"messages": [{"role": "user", "content": f"run $ {COMMAND}"}]}
            out = await sdk.runs.wait(tid, "coder_command", input=ask)
            assert out["__interrupt__"][0]["value"]["action_requests"][0]["name"] == "execute"
            run = await sdk.runs.create(tid, "coder_command", command={"resume": APPROVE})
            log = base / "ws" / tid / "log"
            await poll(lambda: _value(lines(log)), lambda n: n == 1)  # the command is waiting
            server.kill9()  # bwrap dies with it (--die-with-parent), the sandbox with bwrap
            await sdk.aclose()
            server.start()
            (base / "ws" / tid / "go").touch()
            sdk = get_client(url=server.url, api_key=None)
            done = await poll(
                lambda: sdk.runs.get(tid, run["run_id"]),
                lambda r: r["status"] not in ("pending", "running"),
            )
            assert done["status"] == "success"
            assert log.read_text() == "started\nstarted\n"  # run again from the start
            state = await sdk.threads.get_state(tid)
            messages = state["values"]["messages"]
            executed = [m["content"] for m in messages if m["type"] == "tool"]
            assert len(executed) == 1 and "lines: 2" in executed[0], executed
            assert messages[-1]["content"] == f"done: {executed[0]}"
            assert state["next"] == [] and (await sdk.threads.get(tid))["status"] == "idle"
            await sdk.aclose()
        finally:
            server.stop()


async def _value(n: int) -> int:
    return n
