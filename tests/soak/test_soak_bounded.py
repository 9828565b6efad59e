"""The soak in CI: `python -m bench soak --accelerated` for ~1.6 minutes of load, SQLite and
PostgreSQL side by side (bench/soak.py), asserting the row counts stay bounded and nothing fails.

Thread TTL 6 s, run events kept 6 s, sweeps every 3 s (the accelerated config); 8 clients, one
iteration each every 5 s (a chat stream, a 6-step runs.wait, an interrupt/resume pair on three
fresh threads; every other thread deleted, the rest left for the TTL).

Every bound is computed from what the clients created, never from how fast they did it. A thread
the clients left for the TTL (a `kept` record, stamped when the client was done with it) can
still exist at a reading only if the client was done with it within the window W before the
reading: TTL + two sweep intervals + 30 s of slack for a slow machine. So a reading may hold at
most the kept threads finished in [t - W, end of reading], plus one thread per client in use;
the runs on those threads (1 per chat or 6-step thread, 2 per approval), plus two per client; the
run events of those runs and the checkpoints of those threads, at the most a run or thread ever
had in this soak (the graphs are scripted: a constant per graph). An unswept server holds every
kept thread instead: the bound must also be below that, or the run could not tell the two apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.soak import Plan, Soak
from tests.support.postgres import PgCluster

SLACK_S = 30.0  # added to the window: sweeps delayed by a loaded machine
JUDGED_S = 30.0  # the rows of the last 30 s of load are judged
READ_MARGIN_S = 1.0  # read_s is rounded


def plan() -> Plan:
    return Plan(minutes=1.6, accelerated=True, pace=5.0, sample_seconds=10.0)


def window_seconds(plan: Plan) -> float:
    ttl = plan.sections["checkpointer"]["ttl"]
    retention = plan.sections["retention"]
    sweep = (
        max(float(ttl["sweep_interval_minutes"]), float(retention["sweep_interval_minutes"])) * 60
    )
    return float(ttl["default_ttl"]) * 60 + 2 * sweep + SLACK_S


def bounds(lane: dict[str, Any], row: dict[str, Any], plan: Plan) -> dict[str, tuple[int, int]]:
    """Per table: (the most rows a swept server may hold at this reading, what an unswept
    server holds), from the kept threads the clients recorded."""
    end = row["read_s"] + READ_MARGIN_S
    start = row["t_s"] - window_seconds(plan)
    kept = [(t, runs) for t, runs in lane["kept"] if t <= end]
    recent = [(t, runs) for t, runs in kept if t >= start]
    clients = plan.clients
    threads = (len(recent) + clients, len(kept))
    runs = (sum(r for _, r in recent) + 2 * clients, sum(r for _, r in kept))
    per_run = max(r["most_per_owner"]["run_events"] for r in lane["rows"])
    per_thread = max(r["most_per_owner"]["checkpoints"] for r in lane["rows"])
    return {
        "threads": threads,
        "runs": runs,
        "run_events": (runs[0] * per_run, runs[1] * per_run),
        "checkpoints": (threads[0] * per_thread, threads[1] * per_thread),
    }


def unbounded(lane: dict[str, Any], plan: Plan) -> list[str]:
    """What breaks the bounds in the judged rows; empty when every count stays bounded."""
    judged = [r for r in lane["rows"] if r["t_s"] >= plan.seconds - JUDGED_S]
    problems = [] if judged else ["no row in the last 30 s of load"]
    for row in judged:
        for table, (bound, unswept) in bounds(lane, row, plan).items():
            at = f"{table} at {row['t_s']} s"
            if bound >= unswept:
                problems.append(f"{at}: bound {bound} not below unswept {unswept} (run too short)")
            if row[table] > bound:
                problems.append(f"{at}: {row[table]} rows, bound {bound} (unswept: {unswept})")
        for table, owner_bound in (
            ("run_events", bounds(lane, row, plan)["runs"][0]),
            ("checkpoints", bounds(lane, row, plan)["threads"][0]),
        ):
            owners = row["owners"][table]
            if owners > owner_bound:
                problems.append(f"{table} at {row['t_s']} s: {owners} owners, bound {owner_bound}")
    return problems


@pytest.mark.timeout(400)  # ~2 min of wall time, mostly idle waiting between iterations
def test_row_counts_stay_bounded_under_accelerated_retention(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    soak_plan = plan()
    results = Soak(soak_plan, tmp_path, postgres=pg_cluster).run()
    assert set(results) == {"sqlite", "postgres"}
    for backend, lane in results.items():
        errors = lane["verdicts"]["errors"]
        assert errors["ok"], (backend, errors, lane["load"], lane["server_error_samples"])
        assert lane["load"].get("iterations", 0) > 0, (backend, lane["load"])
        assert unbounded(lane, soak_plan) == [], (backend, lane["rows"][-4:])
