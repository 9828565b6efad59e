"""The coder example (examples/agents/coder.py) and `keel.sandbox.current()` end to end through
the SDK, on both backends (Keel-only: the `sandbox` section and the workspaces are Keel's; the
reference has no sandbox, so this module is not run against it). The resume values are the
shape langchain's HumanInTheLoopMiddleware takes: `{"decisions": [{"type": ...}]}`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Client
from tests.support.configured import serve_keel
from tests.support.reference import ROOT
from tests.support.sandbox import traversable_dir
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
CONFIG = {
    "graphs": {
        "coder": f"{ROOT / 'examples' / 'agents' / 'coder.py'}:make_graph",
        "coder_command": f"{GRAPHS / 'coder_command.py'}:make_graph",
        "sandbox_probe": f"{GRAPHS / 'sandbox_probe.py'}:graph",
    },
    # Small limits: test_hostile_commands_leave_keel_healthy meets each of them.
    "sandbox": {
        "wall_seconds": 30,
        "cpu_seconds": 2,
        "memory_bytes": 256 << 20,
        "processes": 32,
        "file_bytes": 1 << 20,
        "output_bytes": 65536,
    },
}
TASK = "Write calc.py with add(a, b) and unit tests for it, run them and make them pass."
RUN_TESTS = "python3 -B -m unittest -v test_calc"
APPROVE = {"decisions": [{"type": "approve"}]}


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    with traversable_dir("keel-coder-") as base:
        yield base / "ws"


@pytest.fixture(scope="module")
def server(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    root: Path,
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel's own config (the sandbox)")
    workdir = tmp_path_factory.mktemp(f"coder-{backend}")
    env = {"KEEL_MODEL": "", "KEEL_SANDBOX_ROOT": str(root)}
    yield from serve_keel(backend, request, workdir, CONFIG, env)


def tool_results(out: dict[str, Any], name: str) -> list[str]:
    return [m["content"] for m in out["messages"] if m["type"] == "tool" and m["name"] == name]


def execute_request(out: dict[str, Any]) -> dict[str, Any]:
    """The interrupt's single action request (HumanInTheLoopMiddleware's batched HITLRequest)."""
    [interrupt] = out["__interrupt__"]
    [request] = interrupt["value"]["action_requests"]
    assert interrupt["value"]["review_configs"][0]["action_name"] == "execute"
    return dict(request)


async def test_the_coder_fixes_its_file_with_two_approved_commands(
    client: Client, root: Path
) -> None:
    tid = (await client.threads.create())["thread_id"]
    task = {"messages": [{"role": "user", "content": TASK}]}
    out = await client.runs.wait(tid, "coder", input=task)
    request = execute_request(out)
    assert (request["name"], request["args"]) == ("execute", {"command": RUN_TESTS})
    ws = root / tid
    assert (ws / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"
    assert tool_results(out, "execute") == []  # nothing ran before the approval
    out = await client.runs.wait(tid, "coder", command={"resume": APPROVE})
    [failed] = tool_results(out, "execute")
    assert "FAIL: test_add" in failed and "[Command failed with exit code 1]" in failed
    assert (ws / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"  # read, edited
    assert execute_request(out)["args"] == {"command": RUN_TESTS}
    out = await client.runs.wait(tid, "coder", command={"resume": APPROVE})
    assert "__interrupt__" not in out
    passed = tool_results(out, "execute")[-1]
    assert "OK" in passed and "[Command succeeded with exit code 0]" in passed
    assert out["messages"][-1]["content"] == "All tests pass: calc.add is fixed."
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_a_rejected_command_is_not_run(client: Client, root: Path) -> None:
    tid = (await client.threads.create())["thread_id"]
    ask = {"messages": [{"role": "user", "content": "please run $ touch ran"}]}
    out = await client.runs.wait(tid, "coder_command", input=ask)
    assert execute_request(out)["args"] == {"command": "touch ran"}
    no = {"decisions": [{"type": "reject", "message": "not on my machine"}]}
    out = await client.runs.wait(tid, "coder_command", command={"resume": no})
    said = "User rejected the tool call for `execute` with reason: not on my machine"
    assert tool_results(out, "execute") == [said]  # HumanInTheLoopMiddleware's reply
    assert out["messages"][-1]["content"] == f"done: {said}"
    assert not (root / tid).exists() or os.listdir(root / tid) == []


async def test_current_works_in_threaded_and_stateless_runs(client: Client, root: Path) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "sandbox_probe", input={"text": "threaded"})
    assert out["seen"] == f"{tid} /workspace threaded"
    assert (root / tid / "probe.txt").read_text() == "threaded"
    out = await client.runs.wait(None, "sandbox_probe", input={"text": "stateless"})
    name, rest = out["seen"].split(" ", 1)
    assert rest == "/workspace stateless" and name != tid


HOSTILE = {
    "fork bomb": "for i in $(seq 100); do sleep 1 & done; wait",
    "memory bomb": "python3 -c 'bytearray(1 << 30)'",
    "cpu spin": "python3 -c 'while True: pass'",
    "disk fill": "head -c 10000000 /dev/zero > big",
    "output bomb": "head -c 1000000 /dev/zero | tr '\\0' x",
    "left running": "sleep 4321.5 & echo started",
}


def host_processes(arg: str) -> list[int]:
    """Pids on the host whose command line has `arg`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in cmdline:
            found.append(int(pid))
    return found


async def test_hostile_commands_leave_keel_healthy(
    client: Client, http: httpx.AsyncClient, root: Path
) -> None:
    """Each hostile command, run by a graph through a real server, meets its limit; afterwards
    the server answers, the next run works and nothing of theirs is left on the host."""
    tid = (await client.threads.create())["thread_id"]
    seen: dict[str, dict[str, Any]] = {}
    for name, command in HOSTILE.items():
        out = await client.runs.wait(tid, "sandbox_probe", input={"command": command})
        seen[name] = out["outcome"]
    assert "Cannot fork" in seen["fork bomb"]["stderr"]
    assert "MemoryError" in seen["memory bomb"]["stderr"]
    assert seen["cpu spin"]["exit_code"] != 0 and not seen["cpu spin"]["timed_out"]
    assert seen["disk fill"]["exit_code"] != 0 and (root / tid / "big").stat().st_size <= 1 << 20
    assert (
        seen["output bomb"]["truncated"]
        and "output truncated at 65536" in seen["output bomb"]["stdout"]
    )
    assert seen["left running"]["stdout"] == "started\n" and host_processes("4321.5") == []
    assert (await http.get("/ok")).json() == {"ok": True}
    assert (await client.threads.get(tid))["status"] == "idle"
    fresh = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(fresh, "sandbox_probe", input={"text": "after"})
    assert out["seen"] == f"{fresh} /workspace after"
