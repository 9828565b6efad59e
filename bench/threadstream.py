"""`python -m bench threadstream`: the v3 thread stream next to `runs.stream` (issue 16;
docs/thread-stream.md).

Keel on SQLite, then the reference (`langgraph dev`, bench/.envs/langgraph-dev), one server at a
time, the same graphs file (bench/graphs.py: `three`, `burst`) and the same clients: the SDK's
`client.threads.stream` with its SSE and its WebSocket transport, and `client.runs.stream`.

- First-event latency: the 3-node `three`, `--runs` runs per transport (after 3 warm-ups),
  interleaved (each round runs the three transports, the order rotating). From sending the start
  (`run.start` / `runs.stream`) to the run's first event (v3: lifecycle `running`; runs.stream:
  `metadata`) and to its first `values` event; p50 and p95.
- Events/s: `burst` emitting `--events` custom events, `--event-runs` runs per transport, also
  interleaved; custom events received / seconds from the start to the last one; the median run.

A transport or channel the reference does not serve is recorded as `n/a` with what was seen.
Results: bench/results/threadstream.md and threadstream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

from bench.contenders import KeelOnDatabase, LangGraphDevServer, Server, write_graphs
from bench.single import ROOT, write_results
from bench.threadstream_clients import (
    RUNS_STREAM,
    TRANSPORTS,
    ResumeGaps,
    Timeline,
    runs_stream_run,
    v3_run,
)
from bench.threadstream_report import report
from tests.support.postgres import Unavailable

GRAPH_IDS = ("three", "burst")
WARMUPS = 3
RUN_TIMEOUT = 300.0  # seconds for one run, whatever the transport: a hang fails the bench


class KeelThreadStream(KeelOnDatabase):
    label = "Keel (SQLite)"

    def prepare(self) -> None:
        self.config = write_graphs(self.workdir, "keel.json", graph_ids=GRAPH_IDS)


class ReferenceThreadStream(LangGraphDevServer):
    def prepare(self) -> None:
        extra = {"dependencies": ["."], "env": {}}
        write_graphs(self.workdir, "langgraph.json", extra, GRAPH_IDS)


def _one(client: LangGraphClient, transport: str, graph: str, body: Any) -> Awaitable[Timeline]:
    if transport == RUNS_STREAM:
        mode: StreamMode = "values" if graph == "three" else "custom"
        return runs_stream_run(client, graph, body, [mode])
    channels = ["values"] if graph == "three" else ["custom"]
    return v3_run(client, transport, graph, body, channels)


async def _rounds(
    client: LangGraphClient, graph: str, body: Any, rounds: int
) -> dict[str, list[Timeline]]:
    """`rounds` runs per transport, interleaved, the order rotating each round."""
    out: dict[str, list[Timeline]] = {t: [] for t in TRANSPORTS}
    for i in range(rounds):
        order = TRANSPORTS[i % 3 :] + TRANSPORTS[: i % 3]
        for transport in order:
            with ResumeGaps() as gaps:
                async with asyncio.timeout(RUN_TIMEOUT):
                    line = await _one(client, transport, graph, body)
            line.resume_gaps = gaps.count
            out[transport].append(line)
    return out


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ranked = sorted(values)
    return ranked[max(0, min(len(ranked) - 1, round(q * len(ranked) + 0.5) - 1))]


def _latency(lines: list[Timeline]) -> dict[str, Any]:
    done = [x for x in lines if x.end == "completed" and x.first_ms is not None]
    steps = [len((x.last_values or {}).get("steps", [])) for x in done]
    if len(done) < len(lines) or any(n != 3 for n in steps):
        ends = sorted({x.end or "no end" for x in lines})
        return {"na": f"{len(lines) - len(done)} of {len(lines)} runs did not complete ({ends})"}
    first = [x.first_ms for x in done if x.first_ms is not None]
    values = [x.first_values_ms for x in done if x.first_values_ms is not None]
    if len(values) < len(done):
        return {"na": f"no `values` event in {len(done) - len(values)} runs"}
    return {
        "first_event_p50_ms": round(statistics.median(first), 1),
        "first_event_p95_ms": round(_pct(first, 0.95), 1),
        "first_values_p50_ms": round(statistics.median(values), 1),
        "first_values_p95_ms": round(_pct(values, 0.95), 1),
    }


def _throughput(lines: list[Timeline], events: int) -> dict[str, Any]:
    received = [x.custom for x in lines]
    if any(n != events for n in received):
        kinds = sorted({k for x in lines for k in x.kinds})
        low, high = min(received), max(received)
        got = f"{low}" if low == high else f"{low}-{high}"
        return {
            "na": f"received {got} of {events} custom events per run; event kinds seen: "
            f"{', '.join(kinds) or 'none'} (subscribed: custom, lifecycle)",
        }
    rates = sorted(x.events_per_s() or 0.0 for x in lines)
    median = statistics.median(rates)
    return {
        "events_per_s": round(median),
        "last_event_s": round(events / median, 2),
        "runs": len(lines),
        "resume_gaps": sum(x.resume_gaps for x in lines),
    }


async def measure(url: str, runs: int, events: int, event_runs: int) -> dict[str, Any]:
    client = get_client(url=url, api_key=None)
    try:
        await _rounds(client, "three", {"topic": "bench"}, WARMUPS)
        timed = await _rounds(client, "three", {"topic": "bench"}, runs)
        latency = {t: _latency(timed[t]) for t in TRANSPORTS}
        burst = await _rounds(client, "burst", {"count": events}, event_runs)
        throughput = {t: _throughput(burst[t], events) for t in TRANSPORTS}
    finally:
        await client.aclose()
    return {"latency": latency, "throughput": throughput}


Measure = Callable[[str], Coroutine[Any, Any, dict[str, Any]]]


def _on(server: Server, measure_at: Measure) -> Any:
    server.prepare()
    server.start(timeout=180)
    try:
        return asyncio.run(measure_at(server.url))
    finally:
        server.stop()


def _reference(workdir: Path, measure_at: Measure) -> Any:
    try:
        python = ReferenceThreadStream.install()
    except Unavailable as exc:
        return {"na": f"langgraph dev not installed: {exc}"}
    server = ReferenceThreadStream(workdir / "reference")
    server.python = python
    try:
        result = _on(server, measure_at)
    except Unavailable as exc:
        return {"na": f"langgraph dev did not start: {exc}"}
    result["versions"] = ReferenceThreadStream.versions(python)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench threadstream")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--event-runs", type=int, default=3)
    parser.add_argument("--keel-only", action="store_true", help="skip the reference server")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "threadstream.md")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/keel-bench-threadstream"))
    args = parser.parse_args(argv)

    def measure_at(url: str) -> Coroutine[Any, Any, dict[str, Any]]:
        return measure(url, args.runs, args.events, args.event_runs)

    args.workdir.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{args.workdir / f'keel-{int(time.time())}.db'}"
    keel = _on(KeelThreadStream(args.workdir / "keel", database), measure_at)
    reference = {"na": "not run (--keel-only)"} if args.keel_only else None
    reference = reference or _reference(args.workdir, measure_at)
    result = {
        "runs": args.runs,
        "events": args.events,
        "event_runs": args.event_runs,
        "langgraph_sdk": version("langgraph-sdk"),
        "keel": keel,
        "reference": reference,
    }
    write_results(args.out, report(result), result)
    return 0
