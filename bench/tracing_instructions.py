"""Instructions per run of a `keel serve` process, traces on against off, counted by valgrind.

    python -m bench.tracing_instructions [--runs 100] [--graph three|agent] [--sample 0.1]

CPU seconds on a shared machine move by ±20 % from one round to the next (bench.tracing_cost);
the instructions a process executes for the same work do not. Each mode gets its own server
under `valgrind --tool=callgrind` (Debian's `valgrind`: `apt-get install valgrind`), started
with instrumentation off; after a warm-up, counting is switched on for `--runs` stateless
`/runs/wait` runs from 4 clients plus 7 s of idling (so a batch export, 5 s after its first
span, falls inside), then off. Prints the instructions per run of each mode and their ratio.
The modes run one after the other; a server under valgrind runs about 50 times slower, so
`--runs 100` takes some ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.metrics_cost import CHAT_GRAPHS, GRAPHS, MESSAGES
from tests.support.otlp import OtlpReceiver
from tests.support.server import free_port

MODES = ("off", "traces", "both")
CLIENTS = 4
IDLE = 7.0  # seconds counted after the runs: the 5 s batch export lands inside


async def _drive(url: str, graph: str, runs: int) -> None:
    body = {"assistant_id": graph, "input": MESSAGES if graph in ("chat", "agent") else {}}
    async with httpx.AsyncClient(base_url=url, timeout=600.0) as http:
        queue = iter(range(runs))

        async def client() -> None:
            for _ in queue:
                (await http.post("/runs/wait", json=body)).raise_for_status()

        await asyncio.gather(*(client() for _ in range(CLIENTS)))


def _project(workdir: Path, graph: str, metrics: bool) -> Path:
    source = CHAT_GRAPHS if graph in ("chat", "agent") else GRAPHS
    shutil.copy(source, workdir / source.name)
    graphs = {graph: f"./{source.name}:{graph}"}
    config = {"graphs": graphs, "http": {"disable_metrics": not metrics}}
    (workdir / "keel.json").write_text(json.dumps(config))
    return workdir / "keel.json"


def _env(mode: str, endpoint: str, sample: float | None) -> dict[str, str]:
    env = {**os.environ, "KEEL_LOG_LEVEL": "warning"}
    if mode != "off":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        if sample is not None:
            env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
            env["OTEL_TRACES_SAMPLER_ARG"] = str(sample)
    return env


def _wait_ok(url: str, proc: subprocess.Popen[bytes], within: float = 900.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode})")
        try:
            if httpx.get(url + "/ok", timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise SystemExit("server did not start")


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def count(mode: str, graph: str, runs: int, sample: float | None, endpoint: str) -> float:
    """Instructions per run of one server in `mode`."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = _project(workdir, graph, mode == "both")
        port, out = free_port(), workdir / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        cmd += [f"--callgrind-out-file={out}", sys.executable, "-m", "keel.cli", "serve"]
        cmd += ["--config", str(config), "--port", str(port)]
        cmd += ["--database", f"sqlite:///{workdir / 'keel.db'}"]
        log = (workdir / "server.log").open("wb")
        proc = subprocess.Popen(cmd, env=_env(mode, endpoint, sample), stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ok(url, proc)
            asyncio.run(_drive(url, graph, 20))  # warm up: imports, plans, caches
            _callgrind(proc.pid, "-i", "on")
            asyncio.run(_drive(url, graph, runs))
            time.sleep(IDLE)
            _callgrind(proc.pid, "-i", "off")
            _callgrind(proc.pid, "-d")
        finally:
            proc.terminate()
            proc.wait(300)
        totals = [int(m) for f in workdir.glob("callgrind.out*") for m in _totals(f)]
    return sum(totals) / runs


def _totals(path: Path) -> list[str]:
    return re.findall(r"^totals: (\d+)$", path.read_text(errors="replace"), re.MULTILINE)


def main(runs: int, graph: str, sample: float | None) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    with OtlpReceiver() as receiver:
        per_run = {mode: count(mode, graph, runs, sample, receiver.url) for mode in MODES}
    for mode in MODES:
        ratio = per_run[mode] / per_run["off"]
        print(f"{mode:<6}: {per_run[mode] / 1e6:7.2f} M instructions per run, {ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--graph", default="three")
    parser.add_argument("--sample", type=float, help="OTEL_TRACES_SAMPLER_ARG (default: all)")
    args = parser.parse_args()
    main(args.runs, args.graph, args.sample)
