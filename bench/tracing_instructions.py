"""Instructions per run of a `keel serve` process, traces on against off, counted by valgrind.

    python -m bench.tracing_instructions [--runs 100] [--graph three|agent] [--sample 0.1]

CPU seconds on a shared machine move by ±20 % from one round to the next (bench.tracing_cost);
the instructions a process executes for the same work do not. Each mode gets its own server
under `valgrind --tool=callgrind` (Debian's `valgrind`: `apt-get install valgrind`), started
with instrumentation off; after a warm-up, counting is switched on for `--runs` stateless
`/runs/wait` runs from 4 clients plus 7 s of idling (so a batch export, 5 s after its first
span, falls inside), then off; then on again for 14 s of idling. The idle window's rate of
instructions (lease heartbeats, pollers: work a server does whatever it serves) over the busy
window's length is taken out, so the figure does not depend on how long the busy window took,
which under valgrind depends on the machine's load. Prints the instructions per run of each
mode and their ratio.
The modes run one after the other; a server under valgrind runs about 50 times slower, so
`--runs 100` takes some ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.metrics_cost import _round
from bench.tracing_cost import MODES
from bench.tracing_cost import _server as tracing_server
from tests.support.otlp import OtlpReceiver

DELAY = "5000"  # ms, the batch processor's default
IDLE = 7.0  # seconds counted after the runs: the 5 s batch export lands inside
START = 900.0  # seconds a server under valgrind may take to answer /ok


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def count(mode: str, graph: str, runs: int, sample: float | None, endpoint: str) -> float:
    """Instructions per run of one server in `mode`, its idle work taken out."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        wrapper.append(f"--callgrind-out-file={out}")
        srv = tracing_server(Path(tmp) / mode, graph, mode, endpoint, DELAY, sample, wrapper)
        srv.start(START)
        try:
            assert srv.proc is not None
            pid = srv.proc.pid
            asyncio.run(_round(srv, graph, 20, 50, False))  # warm up: imports, plans, caches
            busy = _counted(pid, lambda: asyncio.run(_round(srv, graph, runs, 50, False)))
            idle = _counted(pid, lambda: time.sleep(IDLE))
        finally:
            srv.stop()
        work, rest = (_total(Path(f"{out}.{part}")) for part in (1, 2))
    # A server's periodic work (lease heartbeats, pollers) runs whatever it does: as much of it
    # as the idle window's rate gives over the busy window is not the runs' work. Under valgrind
    # the busy window's length depends on the machine's load; this keeps the figure from it.
    return (work - rest * busy / idle) / runs


def _counted(pid: int, work: Callable[[], object]) -> float:
    """Seconds of a window counted (and dumped) around `work` and IDLE seconds of idling after
    it (the 5 s batch export of the spans it made lands inside)."""
    start = time.monotonic()
    _callgrind(pid, "-i", "on")
    work()
    time.sleep(IDLE)
    _callgrind(pid, "-i", "off")
    _callgrind(pid, "-d")
    return time.monotonic() - start


def _total(path: Path) -> int:
    found = re.findall(r"^totals: (\d+)$", path.read_text(errors="replace"), re.MULTILINE)
    return sum(int(n) for n in found)


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
