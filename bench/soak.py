"""The soak: Keel under steady mixed load for N minutes, with thread TTLs and event-log retention
on, to show its footprint stays flat (issue 12).

    python -m bench soak --minutes 60                       # SQLite and PostgreSQL at once
    python -m bench soak --minutes 5 --backend sqlite
    python -m bench soak --minutes 3 --accelerated          # TTLs and sweeps in seconds

Each backend gets its own `keel serve` (a fresh SQLite file; a fresh database in a private
PostgreSQL cluster) and its own load process (bench/soak_load.py: 8 `langgraph-sdk` clients,
each starting one iteration every `--pace` seconds: a streamed chat run, a 6-step runs.wait on a
fresh thread, an interrupt/resume pair; every other thread deleted, the rest left for the TTL).
Both backends run side by side, so `--backend both --minutes 60` takes 60 minutes. Config:
`checkpointer.ttl` {delete, default_ttl 10, sweep every minute} and `retention` {run events 10
min, sweep every minute}; `--accelerated` divides them into seconds. Every `--sample-seconds`
(60; 10 accelerated) a row per backend: server RSS, database size, row counts, p50/p95 of
thread create + 6-step runs.wait, errors. At the end, the verdicts of the issue's targets
(bench/soak_report.py). Results: bench/results/soak-<backend>[-accelerated].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.contenders import ROOT, venv_versions
from bench.harness import raise_file_limit, run_meta
from bench.soak_report import live_header, live_line, render, verdicts
from bench.soak_servers import Lane, wait_for
from tests.support.postgres import PgCluster

BACKENDS = ("sqlite", "postgres")
# minutes, as issue 12 sets them
NORMAL = {
    "checkpointer": {"ttl": {"strategy": "delete", "default_ttl": 10, "sweep_interval_minutes": 1}},
    "retention": {"run_events_minutes": 10, "sweep_interval_minutes": 1},
}
ACCELERATED = {
    "checkpointer": {
        "ttl": {"strategy": "delete", "default_ttl": 0.1, "sweep_interval_minutes": 0.05}
    },
    "retention": {
        "run_events_minutes": 0.1,
        "stateless_runs_minutes": 0.05,
        "thread_events_minutes": 0.05,
        "sweep_interval_minutes": 0.05,
    },
}


def log(msg: str) -> None:
    print(f"[bench soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    minutes: float
    backends: tuple[str, ...] = BACKENDS
    accelerated: bool = False
    retention: bool = True  # False: the baseline, no TTL nor retention (what grows unswept)
    clients: int = 8
    pace: float = 2.0  # seconds between the starts of a client's iterations
    sample_seconds: float = 60.0
    sections: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sections and self.retention:
            self.sections = ACCELERATED if self.accelerated else NORMAL

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def settle_seconds(self) -> float:
        """How long until retention is in steady state: the longest keep time plus a sweep."""
        if not self.sections:
            return 0.0
        ttl = self.sections["checkpointer"]["ttl"]
        retention = self.sections["retention"]
        keep = max(float(ttl["default_ttl"]), float(retention["run_events_minutes"]))
        sweep = max(
            float(ttl["sweep_interval_minutes"]), float(retention["sweep_interval_minutes"])
        )
        return (keep + sweep) * 60

    def warmup_seconds(self) -> float:
        """Rows before this are warm-up: retention settles, then one more row."""
        return self.settle_seconds() + self.sample_seconds

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backends"] = list(self.backends)
        out["warmup_s"] = self.warmup_seconds()
        out["rate"] = {
            "iterations_per_s": self.clients / self.pace,
            "runs_per_s": 4 * self.clients / self.pace,
            "threads_per_s": 3 * self.clients / self.pace,
        }
        return out


class Soak:
    """Runs a plan: one lane per backend, side by side; the rows; the verdicts."""

    def __init__(self, plan: Plan, workdir: Path, postgres: PgCluster | None = None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.postgres = postgres
        self.own_postgres = False
        self.lanes: list[Lane] = []
        self.rows: dict[str, list[dict[str, Any]]] = {b: [] for b in plan.backends}

    def start(self) -> None:
        if "postgres" in self.plan.backends and self.postgres is None:
            log("PostgreSQL: initdb + start")
            self.postgres = PgCluster(self.workdir / "pg", fast=False, log=log)
            self.postgres.start()
            self.own_postgres = True
        for backend in self.plan.backends:
            pg = self.postgres if backend == "postgres" else None
            lane = Lane(backend, self.workdir / backend, pg)
            self.lanes.append(lane)
            lane.start_server(self.plan.sections)
            log(f"{lane.server.label} up at {lane.server.url}")

    def sample(self, t0: float, partial: bool = False) -> None:
        elapsed = time.time() - t0
        for lane in self.lanes:
            row = lane.sample(t0, elapsed)
            row["partial"] = partial
            self.rows[lane.backend].append(row)
            print(live_line(lane.backend, row), flush=True)

    def load(self) -> float:
        """Load on every lane at once, a row per backend every sample; the start (epoch s)."""
        plan = self.plan
        t0 = time.time()
        for lane in self.lanes:
            lane.start_load(plan.clients, plan.pace, plan.seconds)
        print(live_header(), flush=True)
        next_row = t0 + plan.sample_seconds
        while any(lane.loading for lane in self.lanes):
            wait_for(self.lanes, next_row)
            if time.time() >= next_row:
                self.sample(t0)
                next_row += plan.sample_seconds
        for lane in self.lanes:
            lane.finish_load()
        last = max((rows[-1]["t_s"] for rows in self.rows.values() if rows), default=0.0)
        if time.time() - t0 - last > 1.0:  # the iterations that finished after the last row
            self.sample(t0, partial=time.time() - t0 - last < plan.sample_seconds / 2)
        return t0

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for lane in self.lanes:
            rows = self.rows[lane.backend]
            server_errors = lane.server.error_lines()
            out[lane.backend] = {
                "label": lane.server.label,
                "load": lane.summary,
                "rows": rows,
                "kept": lane.kept,
                "server_errors": len(server_errors),
                "server_error_samples": server_errors[:5],
                "verdicts": verdicts(
                    rows,
                    self.plan.warmup_seconds(),
                    self.plan.seconds,
                    lane.summary,
                    len(server_errors),
                ),
            }
        return out

    def run(self) -> dict[str, Any]:
        try:
            self.start()
            self.load()
            return self.results()
        finally:
            for lane in self.lanes:
                lane.stop()
            if self.own_postgres and self.postgres is not None:
                self.postgres.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, required=True, help="minutes of load")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument("--accelerated", action="store_true", help="TTLs and sweeps in seconds")
    parser.add_argument(
        "--no-retention",
        dest="retention",
        action="store_false",
        help="baseline: no TTL nor retention config (what the footprint does unswept)",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pace", type=float, default=2.0, help="seconds per client iteration")
    parser.add_argument("--sample-seconds", type=float, help="seconds per row (60; 10 accelerated)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    sample = args.sample_seconds or (10.0 if args.accelerated else 60.0)
    return Plan(
        minutes=args.minutes,
        backends=backends,
        accelerated=args.accelerated,
        retention=args.retention,
        clients=args.clients,
        pace=args.pace,
        sample_seconds=sample,
    )


def write(results: dict[str, Any], meta: dict[str, Any], plan: Plan, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    suffix = ("-accelerated" if plan.accelerated else "") + ("" if plan.retention else "-baseline")
    written = []
    for backend, lane in results.items():
        data = {"meta": meta, "plan": plan.as_dict(), "backend": backend}
        data.update({k: v for k, v in lane.items() if k != "kept"})
        name = f"soak-{backend}{suffix}"
        (out / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        (out / f"{name}.md").write_text(render(data))
        written.append(out / f"{name}.md")
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_of(args)
    raise_file_limit()
    mode = "accelerated" if plan.accelerated else "normal"
    meta = run_meta(mode, "python -m bench soak", argv if argv is not None else sys.argv[2:])
    started = time.perf_counter()
    rate = plan.as_dict()["rate"]
    log(
        f"{plan.minutes} min on {', '.join(plan.backends)}: {plan.clients} clients, "
        f"{rate['iterations_per_s']:.1f} iterations/s ({rate['runs_per_s']:.0f} runs/s) each"
    )
    with tempfile.TemporaryDirectory(prefix="keel-bench-soak-") as tmp:
        results = Soak(plan, Path(tmp)).run()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["machine"]["load_avg_at_end"] = os.getloadavg()
    meta["versions"] = venv_versions(
        Path(sys.executable), ["keel-runtime", "langgraph", "langgraph-sdk", "psycopg"]
    )
    for path in write(results, meta, plan, args.out):
        print(path.read_text())
        log(f"wrote {path} and .json")
    ok = all(v["ok"] is not False for lane in results.values() for v in lane["verdicts"].values())
    return 0 if ok else 1
