"""`python -m bench lanes`: the priority lanes and the idle trigger, measured (docs/sleep-time.md).

One `keel serve` on SQLite with bench/graphs.py, 10 workers (a quarter reserved for interactive
runs) and an `on_idle` trigger on the `three` graph's threads. Three phases:

1. idle: interactive create + wait of `three` (stateless), one at a time: the p50 baseline;
2. saturated: a backlog of `sleep1` runs (1 s each) in the background lane, more than the
   workers; the same interactive p50 measured while it drains (target: at most 1.5 x idle);
   as a control, one interactive run created right behind the same backlog sent in the
   interactive lane (what lanes prevent: it waits for the whole backlog);
3. the idle trigger's firing delay: the background run's creation time minus its due time
   (the source run's end + `on_idle`), for threads that went idle while the backlog ran
   (target: at most 1 s).

Results: bench/results/lanes.md and lanes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

from bench.contenders import KeelOnDatabase, write_graphs
from bench.single import measure_on_sqlite, write_results
from keel import clock

ROOT = Path(__file__).resolve().parent
IDLE = 1.0  # the trigger's on_idle seconds
BACKGROUND = {"keel_lane": "background"}


class KeelLanes(KeelOnDatabase):
    def prepare(self) -> None:
        trigger = {"graph": "three", "watch": ["three"], "on_idle": IDLE, "input": "thread"}
        extra = {"background": {"reserved_interactive_share": 0.25, "triggers": {"idle": trigger}}}
        self.config = write_graphs(self.workdir, "keel.json", extra)


async def interactive_p50(client: Any, runs: int) -> float:
    """Milliseconds of a stateless create + wait of `three`, median of `runs` in a row."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await client.runs.wait(None, "three", input={"topic": "t"})
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def backlog(client: Any, size: int, lane: dict[str, str] | None) -> list[Any]:
    return [
        await client.runs.create(None, "sleep1", input={"topic": "b"}, metadata=lane or {})
        for _ in range(size)
    ]


async def drain(client: Any, runs: list[Any]) -> None:
    for run in runs:
        await client.runs.join(run["thread_id"], run["run_id"])


async def firing_delays(client: Any, sources: int) -> list[float]:
    """Seconds between each idle trigger's due time and its background run's creation."""
    threads = [(await client.threads.create())["thread_id"] for _ in range(sources)]
    ended = []
    for thread_id in threads:
        await client.runs.wait(thread_id, "three", input={"topic": "s"})
        ended.append((await client.runs.list(thread_id))[0]["updated_at"])
    delays = []
    for thread_id, end in zip(threads, ended, strict=True):
        created = await _first_run_created(client, thread_id)
        delays.append(clock.parse(created) - (clock.parse(end) + IDLE))
    return delays


async def _first_run_created(client: Any, source: str, within: float = 60.0) -> str:
    """When the first background run for `source` was created, found as a user finds it: its
    companion thread by `metadata.keel_source_thread_id` (docs/sleep-time.md)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await client.threads.search(metadata={"keel_source_thread_id": source}, limit=1)
        runs = await client.runs.list(found[0]["thread_id"]) if found else []
        if runs:
            return str(runs[-1]["created_at"])
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the idle trigger never fired for {source}")


async def measure(url: str, runs: int, size: int, sources: int) -> dict[str, Any]:
    client = get_client(url=url, api_key=None)
    try:
        await interactive_p50(client, 3)  # warm-up
        idle = await interactive_p50(client, runs)
        quiet_delays = await firing_delays(client, sources)
        queued = await backlog(client, size, BACKGROUND)
        saturated, loaded_delays = await asyncio.gather(
            interactive_p50(client, runs), firing_delays(client, sources)
        )
        await drain(client, queued)
        queued = await backlog(client, size, None)
        control = await interactive_p50(client, 1)  # right behind the backlog
        await drain(client, queued)
    finally:
        await client.aclose()
    delays = quiet_delays + loaded_delays
    return {
        "runs": runs,
        "backlog": size,
        "idle_p50_ms": round(idle, 1),
        "saturated_p50_ms": round(saturated, 1),
        "ratio": round(saturated / idle, 2),
        "control_p50_ms": round(control, 1),
        "firing_delay_s": {
            "quiet_max": round(max(quiet_delays), 3),
            "saturated_max": round(max(loaded_delays), 3),
            "p50": round(statistics.median(delays), 3),
            "max": round(max(delays), 3),
        },
    }


def report(result: dict[str, Any]) -> str:
    delay = result["firing_delay_s"]
    return "\n".join(
        [
            "# Priority lanes and the idle trigger (`python -m bench lanes`)",
            "",
            f"SQLite, 10 workers (3 reserved for interactive runs), a backlog of "
            f"{result['backlog']} one-second background runs; {result['runs']} interactive "
            "create + wait of `three` per figure.",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| interactive p50, idle | {result['idle_p50_ms']} ms | |",
            f"| interactive p50, workers saturated by background runs | "
            f"{result['saturated_p50_ms']} ms ({result['ratio']}x idle) | <= 1.5x |",
            f"| control: one interactive run behind the same backlog sent in the interactive "
            f"lane | {result['control_p50_ms']} ms | (what lanes prevent) |",
            f"| idle trigger firing delay after its due time, p50 / max | "
            f"{delay['p50']} s / {delay['max']} s | <= 1 s |",
            f"| ... max with the server quiet / saturated | "
            f"{delay['quiet_max']} s / {delay['saturated_max']} s | |",
            "",
        ]
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench lanes")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=60)
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "lanes.md")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/keel-bench-lanes"))
    args = parser.parse_args(argv)
    result = measure_on_sqlite(
        KeelLanes,
        args.workdir,
        "lanes",
        lambda url: measure(url, args.runs, args.backlog, args.sources),
    )
    write_results(args.out, report(result), result)
    return 0
