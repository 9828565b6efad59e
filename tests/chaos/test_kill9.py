"""Chaos: kill -9 the server again and again while runs are in flight.

A `keel serve` process (SQLite file in a temporary directory; forked from a pre-imported zygote,
tests/support/forkserver.py, so that two dozen starts cost little CPU) executes runs of a six-step
graph (`recording_graph.py`) whose every node execution is committed to a side table before the
node sleeps and returns. The test creates runs from separate client threads, kills the server with
SIGKILL again and again (restarting it each time), then lets everything finish and checks the
guarantees of DESIGN.md section 4 against the side table:

- every accepted run reaches `success`, with exactly the six steps, in order, once each, in its
  final state;
- runs use durability="sync", so each step's checkpoint is written before the next step starts:
  a recovered attempt may re-execute at most the single step that was in flight when the previous
  attempt died (the last step that attempt recorded), never a step whose checkpoint was written;
  no step runs twice within one attempt;
- a restarted server picks recovered runs up at once (not after a lease expiry: the lease here is
  longer than the whole test).

The kills are made to land mid-run: one run per window; the server lives a random while, then is
killed as soon as the side table shows it in the middle of a step (every EAGER_EVERY-th window
instead kills at once, so a kill may also cut a create request). A kill counts as a cut when, once
the process is dead, that step still has no end; windows go on until there were KILLS kills and
CUTS cuts (bounded in time), then a last wave of runs is created and cut.

Set KEEL_CHAOS_SEED to replay a schedule (as far as the machine's timing allows).
"""

from __future__ import annotations

import collections
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
from tests.chaos.side_table import cut_attempts, finished, in_step
from tests.support.forkserver import ForkedKeel, ForkServer, restartable_port

pytestmark = pytest.mark.chaos

CONFIG = Path(__file__).parent / "keel.json"
KILLS = 22  # kill -9 at least this many times ...
CUTS = KILLS // 2  # ... of which at least this many cut a step (the windows go on until then)
LAST_WAVE = 3  # runs created in the last window, cut by the final kill
UPTIME = (0.15, 0.7)  # seconds the server lives after a wave was accepted, before the kill
EAGER_EVERY = 5  # every 5th window is killed 0-100 ms after it opens, accepted or not
WAVE_WAIT = 30.0  # how long a window waits for its wave to be accepted
STEP_WAIT = 30.0  # ... and then for a step in flight, before it kills anyway
CHAOS_LIMIT = 240.0  # the windows must reach KILLS and CUTS within this (~25 s when idle)
CREATE_DEADLINE = 120.0  # a run must be accepted within this after its window opened
LEASE_SECONDS = "600"  # longer than the test: a recovered run is never picked up by its expiry
PICKUP_LIMIT = 30.0  # a restarted server must resume orphaned runs within this (after healthy)
DRAIN_TIMEOUT = 60.0


# ------------------------------------------------------------------ bookkeeping
@dataclass
class Incarnation:
    """One server process: when it was spawned, became healthy and was killed (epoch seconds)."""

    pid: int
    spawned: float
    healthy: float
    killed: float | None = None
    cut: int = 0  # run attempts its kill left in the middle of a step


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


def start(server: ForkedKeel, incarnations: list[Incarnation]) -> None:
    spawned = time.time()
    server.start()
    assert server.pid is not None
    incarnations.append(Incarnation(server.pid, spawned, time.time()))


def create_run(url: str, planned: PlannedRun, deadline: float) -> None:
    """Create `planned`'s thread and run once, retrying across kills without duplicating it.

    A POST cut off by a kill may or may not have been committed, so before every attempt the
    thread's runs are listed: each planned run owns its thread, so any run there is ours.
    """
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
def chaos_server(tmp_path: Path) -> Iterator[ForkedKeel]:
    """`keel serve` on SQLite, restartable on the same port. Forked from a pre-imported zygote
    (tests/support/forkserver.py): two dozen plain starts would cost a minute of CPU."""
    env = {
        **os.environ,
        "KEEL_LOG_LEVEL": "warning",
        "KEEL_LEASE_SECONDS": LEASE_SECONDS,
        SIDE_DB_ENV: str(tmp_path / "side.db"),
    }
    port = restartable_port()
    argv = ["serve", "--config", str(CONFIG), "--port", str(port)]
    argv += ["--database", f"sqlite:///{tmp_path / 'keel.db'}"]
    forks = ForkServer()
    url = f"http://127.0.0.1:{port}"
    server = ForkedKeel("server", forks, argv, env, tmp_path / "logs", url=url)
    try:
        yield server
    finally:
        server.stop()
        forks.close()


class Schedule:
    """Opens windows (each creates its runs in client threads) and ends each with a kill -9 and
    a restart, until the server was killed KILLS times and CUTS kills cut a step."""

    def __init__(self, server: ForkedKeel, side_db: Path, rng: random.Random) -> None:
        self.server, self.side_db, self.rng = server, side_db, rng
        self.incarnations: list[Incarnation] = []
        self.plans: list[PlannedRun] = []
        self.threads: list[threading.Thread] = []

    @property
    def cuts(self) -> int:
        return sum(1 for inc in self.incarnations if inc.cut)

    def run(self) -> None:
        start(self.server, self.incarnations)
        deadline = time.monotonic() + CHAOS_LIMIT
        window = 0
        while window < KILLS - 1 or self.cuts < CUTS:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{window} kills, {self.cuts} of them cut a step, in {CHAOS_LIMIT}s: "
                    f"fewer than {KILLS} or {CUTS}"
                )
            eager = window % EAGER_EVERY == EAGER_EVERY - 1
            self.window(window, 1, eager)
            window += 1
        self.window(window, LAST_WAVE, eager=False)

    def window(self, window: int, runs: int, eager: bool) -> None:
        wave = [PlannedRun(str(uuid.uuid4()), window) for _ in range(runs)]
        for plan in wave:
            deadline = time.monotonic() + CREATE_DEADLINE
            args = (str(self.server.url), plan, deadline)
            self.threads.append(threading.Thread(target=create_run, args=args, daemon=True))
            self.threads[-1].start()
        self.plans += wave
        if eager:
            time.sleep(self.rng.uniform(0.0, 0.1))
        else:
            wave_deadline = time.monotonic() + WAVE_WAIT
            for plan in wave:
                plan.accepted.wait(max(wave_deadline - time.monotonic(), 0.0))
            time.sleep(self.rng.uniform(*UPTIME))
            self.wait_in_step()
        self.kill_and_restart()

    def wait_in_step(self) -> None:
        """Until the current process is in the middle of a step (at most STEP_WAIT), or every
        run created so far has run its last step: then no step can come for this kill to cut
        (waiting out STEP_WAIT for one cost 30 s in a third of the chaos runs)."""
        pid = self.incarnations[-1].pid
        deadline = time.monotonic() + STEP_WAIT
        while time.monotonic() < deadline:
            if in_step(self.side_db, [pid]) or self.all_ran():
                return
            time.sleep(0.01)

    def all_ran(self) -> bool:
        accepted = [plan.run_id for plan in self.plans if plan.run_id is not None]
        if len(accepted) < len(self.plans):  # one not accepted yet: it is still to run
            return False
        return finished(self.side_db, accepted, STEPS[-1])

    def kill_and_restart(self) -> None:
        current = self.incarnations[-1]
        current.killed = time.time()
        self.server.kill9()  # returns once the process is gone
        current.cut = cut_attempts(self.side_db, current.pid)
        start(self.server, self.incarnations)


@pytest.mark.timeout(600)  # every wait is bounded well below this; ~30 s on an idle machine
def test_kill9_during_runs(chaos_server: ForkedKeel, tmp_path: Path) -> None:
    seed = int(os.environ.get("KEEL_CHAOS_SEED") or random.randrange(1 << 32))
    t0 = time.time()
    schedule = Schedule(chaos_server, tmp_path / "side.db", random.Random(seed))
    schedule.run()
    chaos_done = time.time()
    plans, incarnations = schedule.plans, schedule.incarnations
    for th in schedule.threads:
        th.join(CREATE_DEADLINE + 10)
    not_accepted = {p.thread_id: p.error for p in plans if p.run_id is None}
    assert not not_accepted, f"runs never accepted: {not_accepted}"

    runs, states = outcomes(chaos_server, plans)
    all_done = time.time()
    executions = read_executions(tmp_path / "side.db")
    by_run: dict[str, list[Execution]] = collections.defaultdict(list)
    for ex in executions:
        by_run[ex.run_id].append(ex)
    histories = {run_id: attempts_of(by_run[run_id]) for run_id in runs}
    pickups = pickup_delays(incarnations, executions)
    print(f"\nchaos seed={seed}: {len(runs)} runs, {len(incarnations)} server processes")
    report(plans, incarnations, runs, executions, histories, pickups)
    print(
        f"  drain observed by the client {all_done - chaos_done:.2f}s after the final restart; "
        f"total time: {all_done - t0:.1f}s"
    )

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
    for pid, after_healthy in pickups:
        if after_healthy > PICKUP_LIMIT:
            failures.append(
                f"process {pid} resumed orphaned runs {after_healthy:.2f}s after it was healthy"
            )
    shown = failures[:15] + ([f"... and {len(failures) - 15} more"] if len(failures) > 15 else [])
    assert not failures, "\n".join(shown)
    # Every cut left an unfinished step in an attempt of a run that then succeeded, so each
    # cut attempt was followed by a later one (the schedule ran until CUTS kills cut a step).
    interrupted = sum(max(len(h) - 1, 0) for h in histories.values())
    assert interrupted >= sum(inc.cut for inc in incarnations), interrupted


def outcomes(server: ForkedKeel, plans: list[PlannedRun]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every run once it ended, and its thread's final values."""
    client = get_sync_client(url=str(server.url), api_key=None, timeout=DRAIN_TIMEOUT)
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
    return runs, states


def pickup_delays(
    incarnations: list[Incarnation], executions: list[Execution]
) -> list[tuple[int, float]]:
    """(pid, healthy -> its first step of a recovered attempt) for each restarted process that
    resumed a run."""
    pickups = []
    for inc in incarnations[1:]:
        recovered = [e.at for e in executions if e.pid == inc.pid and e.attempt > 1]
        if recovered:
            pickups.append((inc.pid, min(recovered) - inc.healthy))
    return pickups


def report(
    plans: list[PlannedRun],
    incarnations: list[Incarnation],
    runs: dict[str, Any],
    executions: list[Execution],
    histories: dict[str, dict[int, list[str]]],
    pickups: list[tuple[int, float]],
) -> None:
    kills = [inc for inc in incarnations if inc.killed is not None]
    max_attempt = {run_id: max(h) if h else 0 for run_id, h in histories.items()}
    distribution = collections.Counter(max_attempt.values())
    duplicates = len([e for e in executions if e.run_id in runs]) - len(STEPS) * len(runs)
    startup = [inc.healthy - inc.spawned for inc in incarnations]
    finished = [datetime.fromisoformat(str(r["updated_at"])).timestamp() for r in runs.values()]
    print(
        f"  {len(kills)} kills, {sum(1 for i in kills if i.cut)} of them cut "
        f"{sum(i.cut for i in kills)} run attempts mid-step"
    )
    print(f"  run statuses: {dict(collections.Counter(r['status'] for r in runs.values()))}")
    print(
        "  attempts per run (highest attempt that executed a step): "
        + ", ".join(f"{a}: {n}" for a, n in sorted(distribution.items()))
    )
    print(
        f"  interrupted attempts: {sum(max(len(h) - 1, 0) for h in histories.values())}; step "
        f"executions: {len(executions)} for {len(STEPS) * len(runs)} steps; duplicate "
        f"(in-flight) executions: {duplicates}"
    )
    print(
        f"  server start (spawn -> healthy): median {statistics.median(startup):.2f}s, "
        f"max {max(startup):.2f}s"
    )
    if pickups:
        delays = [d for _, d in pickups]
        print(
            f"  recovered-run pickup after restart ({len(pickups)} restarts): healthy -> first "
            f"step median {statistics.median(delays):+.3f}s, max {max(delays):+.3f}s"
        )
    creates = sum(p.create_attempts for p in plans)
    print(f"  create requests: {creates} for {len(plans)} runs (retries across kills)")
    final = incarnations[-1]
    print(f"  final restart -> all runs finished: {max(finished) - final.spawned:.2f}s")


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


def test_stream_reconnect_across_kill9(chaos_server: ForkedKeel) -> None:
    """A client that saw events of a killed attempt and reconnects with Last-Event-ID misses
    nothing of the recovered attempt (its events may not have reached the log before the kill)."""
    server = chaos_server
    server.start()
    thread_id = str(uuid.uuid4())
    seen: list[SseEvent] = []
    with httpx.Client(base_url=str(server.url), timeout=30.0) as http:
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
