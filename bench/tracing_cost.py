"""The CPU cost of OpenTelemetry traces (keel/tracing): server CPU per run, traces on vs off.

    python -m bench.tracing_cost [--runs 300] [--rounds 4] [--graph three|agent]

Starts three `keel serve` processes on SQLite with the bench graphs: `off` (no metrics, no
traces), `traces` (OTLP/HTTP export to a receiver in this process, metrics off) and `both`
(traces and metrics, a scrape every 50 runs), and runs the same workload on each in rotating
rounds (bench.metrics_cost's `_round`: stateless `/runs/wait` runs from 4 concurrent clients).
Every span is sampled and exported (the SDK's default sampler and batch delay, 5 s, unless
`--delay-ms`; `--sample 0.1`: a tenth of the traces, `parentbased_traceidratio`): a request
span, a run span and a span per node for each run. Prints each server's CPU seconds per run
(its process tree, from /proc) and the ratios to `off`. The receiver's decoding runs in this
process, outside the servers' CPU. `--graph agent` (bench/chat_graph.py) runs an agent
instead: 3 nodes, 2 calls of a scripted model and a tool call, 8 spans a run.

CPU time on a shared machine moves by ±20 % from round to round; bench.tracing_instructions
counts the instructions instead (valgrind), which do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.metrics_cost import _round
from bench.metrics_cost import _server as metrics_server
from tests.support.otlp import OtlpReceiver
from tests.support.server import KeelServer

MODES = ("off", "traces", "both")


def _server(
    workdir: Path,
    graph: str,
    mode: str,
    endpoint: str,
    delay: str,
    ratio: float | None,
    wrapper: list[str] | None = None,
) -> KeelServer:
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": delay}
    if ratio is not None:  # sample that share of the traces (the request's trace id decides)
        traced["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        traced["OTEL_TRACES_SAMPLER_ARG"] = str(ratio)
    env = traced if mode != "off" else {}
    return metrics_server(workdir, graph, mode == "both", None, env, wrapper)


async def main(runs: int, rounds: int, graph: str, delay: str, ratio: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as receiver:
        servers = {m: _server(Path(tmp) / m, graph, m, receiver.url, delay, ratio) for m in MODES}
        for srv in servers.values():
            srv.start()
        try:
            for mode, srv in servers.items():  # warm up: imports, plans, caches
                await _round(srv, graph, runs // 4 or 1, 50, mode == "both")
            # ... and the first batch export, which imports and connects the HTTP client once.
            await asyncio.sleep(int(delay) / 1000 + 1)
            cost: dict[str, list[float]] = {m: [] for m in MODES}
            for i in range(rounds):
                order = MODES[i % 3 :] + MODES[: i % 3]
                for mode in order:
                    cost[mode].append(await _round(servers[mode], graph, runs, 50, mode == "both"))
        finally:
            for srv in servers.values():
                srv.stop()
        spans = len(receiver.trace(None))
    report(cost)
    print(f"spans received: {spans}")


def report(cost: dict[str, list[float]]) -> None:
    """Each mode's mean CPU per run and its ratio to `off`: of the means, and the median of the
    rounds' own ratios (a round runs every mode back to back, so a slow spell of the machine
    falls on all of them alike)."""
    mean = {mode: sum(values) / len(values) for mode, values in cost.items()}
    for mode in MODES:
        rounds_ms = ", ".join(f"{v * 1e3:.2f}" for v in cost[mode])
        ratio = mean[mode] / mean["off"]
        paired = statistics.median(v / o for v, o in zip(cost[mode], cost["off"], strict=True))
        print(
            f"{mode:<6}: {mean[mode] * 1e3:6.2f} ms server CPU per run ({rounds_ms}) "
            f"{ratio:.3f}, median of rounds {paired:.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--graph", default="three")
    parser.add_argument("--delay-ms", default="5000", help="OTEL_BSP_SCHEDULE_DELAY")
    parser.add_argument("--sample", type=float, help="OTEL_TRACES_SAMPLER_ARG (default: all)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds, args.graph, args.delay_ms, args.sample))
