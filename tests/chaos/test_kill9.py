"""Chaos: kill -9 the server again and again while runs are in flight.

A real `keel serve` process (SQLite file in a temporary directory) executes runs of a six-step
graph (`recording_graph.py`) whose every node execution is committed to a side table before the
node sleeps and returns. The test creates runs from separate client threads, kills the server with
SIGKILL at random moments (restarting it each time), then lets everything finish and checks the
guarantees of DESIGN.md section 4 against the side table:

- every accepted run reaches `success`, with exactly the six steps, in order, once each, in its
  final state;
- runs use durability="sync", so each step's checkpoint is written before the next step starts:
  a recovered attempt may re-execute at most the single step that was in flight when the previous
  attempt died (the last step that attempt recorded), never a step whose checkpoint was written;
  no step runs twice within one attempt;
- a restarted server picks recovered runs up at once (not after a lease expiry).

Set KEEL_CHAOS_SEED to replay a schedule.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.chaos.recording_graph import SIDE_DB_ENV, STEPS
from tests.support.server import KeelServer

pytestmark = pytest.mark.chaos

CONFIG = Path(__file__).parent / "keel.json"
KILLS = 22  # kill -9 this many times
LAST_WAVE = 3  # runs created in the last window before the final kill, so it lands mid-run
N_RUNS = (KILLS - 1) + LAST_WAVE  # one run per earlier window, then the last wave
UPTIME = (0.15, 0.7)  # seconds the server lives after a wave was accepted, before SIGKILL
WAVE_WAIT = 3.0  # how long a window waits for its wave to be accepted
EAGER_EVERY = 5  # every 5th window is killed 0-100 ms after it opens, accepted or not
PICKUP_LIMIT = 1.0  # a restarted server must resume orphaned runs within this (after healthy)
DRAIN_TIMEOUT = 30.0


# ------------------------------------------------------------------ bookkeeping
@dataclass
class Incarnation:
    """One server process: when it was spawned, became healthy and was killed (epoch seconds)."""

    pid: int
    spawned: float
    healthy: float
    killed: float | None = None


@dataclass
class PlannedRun:
    thread_id: str
    window: int
    accepted: threading.Event = field(default_factory=threading.Event)
    run_id: str | None = None
    create_attempts: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Execution:
    seq: int
    run_id: str
    step: str
    attempt: int
    pid: int
    at: float


def start(server: KeelServer, incarnations: list[Incarnation]) -> None:
    spawned = time.time()
    server.start()
    assert server.proc is not None
    incarnations.append(Incarnation(server.proc.pid, spawned, time.time()))


def create_run(url: str, planned: PlannedRun, gate: threading.Event, deadline: float) -> None:
    """Create `planned`'s thread and run once, retrying across kills without duplicating it.

    A POST cut off by a kill may or may not have been committed, so before every attempt the
    thread's runs are listed: each planned run owns its thread, so any run there is ours.
    """
    gate.wait()
    client = get_sync_client(url=url, api_key=None, timeout=10.0)
    try:
        while True:
            planned.create_attempts += 1
            try:
                client.threads.create(thread_id=planned.thread_id, if_exists="do_nothing")
                existing = client.runs.list(planned.thread_id)
                if existing:
                    run = existing[0]
                else:
                    run = client.runs.create(
                        planned.thread_id,
                        "recording",
                        input={"steps": []},
                        durability="sync",
                        multitask_strategy="reject",
                    )
                planned.run_id = run["run_id"]
                planned.accepted.set()
                return
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    planned.error = f"not accepted before the deadline: {exc!r}"
                    return
                time.sleep(0.05)
    except Exception as exc:
        planned.error = repr(exc)
    finally:
        client.close()


def read_executions(path: Path) -> list[Execution]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT seq, run_id, step, attempt, pid, at FROM executions ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [Execution(*row) for row in rows]


def attempts_of(executions: list[Execution]) -> dict[int, list[str]]:
    """One run's executed steps per attempt, in execution order."""
    by_attempt: dict[int, list[str]] = collections.defaultdict(list)
    for ex in sorted(executions, key=lambda e: e.seq):
        by_attempt[ex.attempt].append(ex.step)
    return dict(sorted(by_attempt.items()))


def check_run_history(by_attempt: dict[int, list[str]]) -> list[str]:
    """Violations of the recovery guarantee in one run's per-attempt step history."""
    problems: list[str] = []
    if not by_attempt:
        return ["no step was ever executed"]
    attempts = list(by_attempt)
    for attempt, steps in by_attempt.items():
        repeated = sorted({s for s in steps if steps.count(s) > 1})
        if repeated:
            problems.append(f"attempt {attempt} executed {repeated} more than once")
        idx = [STEPS.index(s) for s in steps]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            problems.append(f"attempt {attempt} executed steps out of order: {steps}")
    for i, attempt in enumerate(attempts[:-1]):
        in_flight = by_attempt[attempt][-1]
        later = {s for a in attempts[i + 1 :] for s in by_attempt[a]}
        rerun = sorted((set(by_attempt[attempt]) & later) - {in_flight}, key=STEPS.index)
        if rerun:
            problems.append(
                f"checkpointed steps {rerun} of attempt {attempt} ran again later "
                f"(only the in-flight {in_flight!r} may)"
            )
        nxt = by_attempt[attempts[i + 1]][0]
        allowed = {in_flight, *STEPS[STEPS.index(in_flight) + 1 : STEPS.index(in_flight) + 2]}
        if nxt not in allowed:
            problems.append(
                f"attempt {attempts[i + 1]} started at {nxt!r} after attempt {attempt} "
                f"stopped in {in_flight!r}"
            )
    executed = [s for steps in by_attempt.values() for s in steps]
    if sorted(set(executed), key=STEPS.index) != list(STEPS):
        problems.append(f"steps never executed: {sorted(set(STEPS) - set(executed))}")
    return problems


def test_history_checker_rejects_restart_from_scratch() -> None:
    """The checker itself must fail histories that recovery from scratch would produce."""
    ok = {1: ["step1", "step2", "step3"], 3: ["step3", "step4", "step5", "step6"]}
    assert check_run_history(ok) == []
    assert check_run_history({2: ["step1", "step2"], 3: ["step3", "step4", "step5", "step6"]}) == []
    from_scratch = {1: ["step1", "step2", "step3"], 2: list(STEPS)}
    assert check_run_history(from_scratch)
    assert check_run_history({1: ["step1", "step2", "step2", "step3", "step4", "step5", "step6"]})
    assert check_run_history({1: ["step1", "step2"], 2: ["step4", "step5", "step6"]})
    assert check_run_history({1: ["step1", "step2", "step3"]})


# ------------------------------------------------------------------------ the test
@pytest.fixture
def chaos_server(tmp_path: Path) -> Iterator[KeelServer]:
    side_db = tmp_path / "side.db"
    server = KeelServer(
        CONFIG,
        tmp_path,
        env={
            SIDE_DB_ENV: str(side_db),
        },
    )
    try:
        yield server
    finally:
        server.stop()


def test_kill9_during_runs(chaos_server: KeelServer, tmp_path: Path) -> None:
    seed = int(os.environ.get("KEEL_CHAOS_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    server = chaos_server
    t0 = time.time()
    incarnations: list[Incarnation] = []
    start(server, incarnations)

    # One planned run per window before the last kill window, then a last wave.
    plans = [PlannedRun(str(uuid.uuid4()), w) for w in range(KILLS - 1)]
    plans += [PlannedRun(str(uuid.uuid4()), KILLS - 1) for _ in range(LAST_WAVE)]
    gates = [threading.Event() for _ in range(KILLS)]
    deadline = time.monotonic() + 80.0
    threads = [
        threading.Thread(
            target=create_run, args=(server.url, p, gates[p.window], deadline), daemon=True
        )
        for p in plans
    ]
    for th in threads:
        th.start()

    # Chaos: open a window, wait for its wave to be accepted, let it run a little, SIGKILL.
    # Every EAGER_EVERY-th window kills at once instead, so a kill may also cut a create request.
    for window in range(KILLS):
        gates[window].set()
        if window % EAGER_EVERY == EAGER_EVERY - 1 and window < KILLS - 1:
            time.sleep(rng.uniform(0.0, 0.1))
        else:
            wave_deadline = time.monotonic() + WAVE_WAIT
            for p in plans:
                if p.window == window:
                    p.accepted.wait(max(wave_deadline - time.monotonic(), 0.0))
            time.sleep(rng.uniform(*UPTIME))
        incarnations[-1].killed = time.time()
        server.kill9()
        start(server, incarnations)
    chaos_done = time.time()
    final = incarnations[-1]

    for th in threads:
        th.join(20.0)
    not_accepted = {p.thread_id: p.error for p in plans if p.run_id is None}
    assert not not_accepted, f"runs never accepted: {not_accepted}"

    # Let everything finish, then read the outcome of every run.
    client = get_sync_client(url=server.url, api_key=None, timeout=DRAIN_TIMEOUT)
    try:
        runs = {}
        states = {}
        for p in plans:
            assert p.run_id is not None
            client.runs.join(p.thread_id, p.run_id)
            runs[p.run_id] = client.runs.get(p.thread_id, p.run_id)
            states[p.run_id] = client.threads.get_state(p.thread_id)["values"]
    finally:
        client.close()
    all_done = time.time()
    executions = read_executions(tmp_path / "side.db")

    # ---------------------------------------------------------------- figures
    by_run: dict[str, list[Execution]] = collections.defaultdict(list)
    for ex in executions:
        by_run[ex.run_id].append(ex)
    histories = {run_id: attempts_of(by_run[run_id]) for run_id in runs}
    finished_at = [datetime.fromisoformat(str(r["updated_at"])).timestamp() for r in runs.values()]
    last_finish = max(finished_at)
    max_attempt = {run_id: max(h) if h else 0 for run_id, h in histories.items()}
    distribution = collections.Counter(max_attempt.values())
    duplicates = len([e for e in executions if e.run_id in runs]) - len(STEPS) * len(runs)
    interrupted_attempts = sum(max(len(h) - 1, 0) for h in histories.values())
    by_pid = {inc.pid: inc for inc in incarnations}
    # A kill "landed mid-run" when some run recorded a step in that process and recorded more
    # steps in a later attempt.
    mid_run_kills = {
        ex.pid for run_id, h in histories.items() for ex in by_run[run_id] if ex.attempt != max(h)
    }
    # Pickup: first step of a recovered attempt (attempt > 1) executed by each restarted process.
    pickups: list[tuple[float, float]] = []
    for inc in incarnations[1:]:
        recovered = [e.at for e in executions if e.pid == inc.pid and e.attempt > 1]
        if recovered:
            first = min(recovered)
            pickups.append((first - inc.spawned, first - inc.healthy))
    startup = [inc.healthy - inc.spawned for inc in incarnations]
    finish_of = dict(zip(runs, finished_at, strict=True))
    # Recovery: from each restart to the end of every run the kill before it interrupted
    # (counted only when they all finished before the next kill).
    recoveries: list[float] = []
    final_recovery: float | None = None
    for prev, inc in itertools.pairwise(incarnations):
        cut = {
            e.run_id for e in executions if e.pid == prev.pid and e.attempt != max_attempt[e.run_id]
        }
        ends = [finish_of[r] for r in cut if r in finish_of]
        if cut and len(ends) == len(cut) and (inc.killed is None or max(ends) < inc.killed):
            recoveries.append(max(ends) - inc.spawned)
            if inc is final:
                final_recovery = max(ends) - inc.spawned
    creates = sum(p.create_attempts for p in plans)

    print(
        f"\nchaos seed={seed}: {len(runs)} runs, {KILLS} kills "
        f"({len(mid_run_kills & set(by_pid))} landed mid-run), {len(incarnations)} server processes"
    )
    print(f"  run statuses: {dict(collections.Counter(r['status'] for r in runs.values()))}")
    print(
        "  attempts per run (highest attempt that executed a step): "
        + ", ".join(f"{a}: {n}" for a, n in sorted(distribution.items()))
    )
    print(
        f"  interrupted attempts: {interrupted_attempts}; step executions: {len(executions)} "
        f"for {len(STEPS) * len(runs)} steps; duplicate (in-flight) executions: {duplicates}"
    )
    print(f"  create requests: {creates} for {len(plans)} runs (retries across kills)")
    print(
        f"  server start (spawn -> healthy): median {statistics.median(startup):.2f}s, "
        f"max {max(startup):.2f}s"
    )
    if pickups:
        print(
            f"  recovered-run pickup after restart ({len(pickups)} restarts): spawn -> first step "
            f"median {statistics.median(p[0] for p in pickups):.2f}s, "
            f"max {max(p[0] for p in pickups):.2f}s; healthy -> first step "
            f"median {statistics.median(p[1] for p in pickups):+.3f}s, "
            f"max {max(p[1] for p in pickups):+.3f}s"
        )
    if recoveries:
        print(
            f"  restart (spawn) -> every run interrupted by the kill finished "
            f"({len(recoveries)} restarts): median {statistics.median(recoveries):.2f}s, "
            f"max {max(recoveries):.2f}s"
        )
    if final_recovery is not None:
        print(f"  final restart -> runs cut by the final kill finished: {final_recovery:.2f}s")
    print(
        f"  final restart -> all runs finished: {last_finish - final.spawned:.2f}s "
        f"(healthy -> finished {last_finish - final.healthy:.2f}s; drain observed by client "
        f"{all_done - chaos_done:.2f}s; includes runs whose create was still retrying)"
    )
    print(f"  total time: {all_done - t0:.1f}s")

    # ---------------------------------------------------------------- guarantees
    failures: list[str] = []
    for run_id, run in runs.items():
        if run["status"] != "success":
            failures.append(f"run {run_id}: status {run['status']!r}")
        values = states[run_id]
        steps = values.get("steps") if isinstance(values, dict) else None
        if steps != list(STEPS):
            failures.append(f"run {run_id}: final state steps {steps}")
        failures += [
            f"run {run_id}: {p} {histories[run_id]}" for p in check_run_history(histories[run_id])
        ]
    for inc, (_, after_healthy) in zip(
        [i for i in incarnations[1:] if any(e.pid == i.pid and e.attempt > 1 for e in executions)],
        pickups,
        strict=True,
    ):
        if after_healthy > PICKUP_LIMIT:
            failures.append(
                f"process {inc.pid} resumed orphaned runs {after_healthy:.2f}s after it was healthy"
            )
    shown = failures[:15] + ([f"... and {len(failures) - 15} more"] if len(failures) > 15 else [])
    assert not failures, "\n".join(shown)
    # The schedule must actually have exercised recovery, or the checks above prove nothing.
    assert interrupted_attempts >= KILLS // 2, f"only {interrupted_attempts} attempts interrupted"
    assert len(mid_run_kills) >= KILLS // 2, f"only {len(mid_run_kills)} kills landed mid-run"


# ------------------------------------------------------------- stream across a kill
@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: int | None


def sse_events(response: httpx.Response) -> Iterator[SseEvent]:
    event, data, event_id = "message", "", None
    for line in response.iter_lines():
        if not line:
            if data:
                yield SseEvent(event, data, event_id)
            event, data, event_id = "message", "", None
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line.startswith("id: "):
            event_id = int(line[len("id: ") :].rsplit(".", 1)[-1])


def test_stream_reconnect_across_kill9(chaos_server: KeelServer) -> None:
    """A client that saw events of a killed attempt and reconnects with Last-Event-ID misses
    nothing of the recovered attempt (its events may not have reached the log before the kill)."""
    server = chaos_server
    server.start()
    thread_id = str(uuid.uuid4())
    seen: list[SseEvent] = []
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        http.post("/threads", json={"thread_id": thread_id}).raise_for_status()
        body = {
            "assistant_id": "recording",
            "input": {"steps": []},
            "stream_mode": ["values"],
            "stream_resumable": True,
            "durability": "sync",
        }
        with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
            response.raise_for_status()
            for ev in sse_events(response):
                seen.append(ev)
                if ev.event == "values" and len(loads_steps(ev.data)) == 2:
                    server.kill9()  # at once: the event just seen is most likely not flushed
                    break
        run_id = loads_json(seen[0].data)["run_id"]
        last_id = seen[-1].id
        assert last_id is not None
        server.start()
        resumed: list[SseEvent] = []
        headers = {"Last-Event-ID": str(last_id)}
        url = f"/threads/{thread_id}/runs/{run_id}/stream"
        with http.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            resumed = list(sse_events(response))
    ids = [ev.id for ev in seen + resumed if ev.id is not None]
    assert len(ids) == len(seen) + len(resumed), "an event came without an id"
    assert ids == sorted(set(ids)), f"event ids not strictly increasing: {ids}"
    attempts = [loads_json(ev.data).get("attempt") for ev in resumed if ev.event == "metadata"]
    assert attempts == [2], f"recovered attempt's metadata event missed: {resumed}"
    final = [loads_steps(ev.data) for ev in resumed if ev.event == "values"]
    assert final and final[-1] == list(STEPS), resumed


def loads_json(data: str) -> dict[str, Any]:
    value = json.loads(data)
    assert isinstance(value, dict)
    return value


def loads_steps(data: str) -> list[str]:
    steps = loads_json(data).get("steps")
    assert isinstance(steps, list)
    return [str(s) for s in steps]
