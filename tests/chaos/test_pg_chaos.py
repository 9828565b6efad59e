"""Chaos on PostgreSQL: kill -9 API and worker processes (and PostgreSQL once) under load.

Two API-only processes (`keel serve --no-workers`) and three `keel worker` processes share one
private PostgreSQL cluster. Clients create N_RUNS runs of the six-step recording graph
(`recording_graph.py`, durability "sync") through both API processes while, every ~0.5 s, a random
API or worker process is killed with SIGKILL and restarted; PostgreSQL itself is killed (-9) and
restarted once, mid-test. A subset of the runs is created with POST .../runs/stream and followed
to the end by clients that reconnect with Last-Event-ID to the other API process whenever their
connection drops. Afterwards the side table of step executions, the `runs` and `run_events`
tables and the API are checked:

- every run was accepted once, ended `success`, with exactly the six steps in order in its state;
- no step ran again after its checkpoint was written (only the step in flight when its executor
  died or stopped may repeat), checked per attempt by test_kill9's checker;
- no two executions of a run overlap in time (so no run was executed by two workers at once),
  from each step's start and end time (or its process's death);
- every followed stream received the run's full event log exactly once, in order (ids and
  payloads), and a replay with Last-Event-ID 0 after the end returns the same log.

Processes are forked from a pre-imported zygote (tests/support/forkserver.py): a plain
`python -m keel.cli` start costs 1-2 CPU seconds of imports, more than two cores can pay twice a
second. Set KEEL_CHAOS_SEED to replay a schedule.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import math
import os
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.chaos.recording_graph import SIDE_DB_ENV, STEP_SECONDS_ENV, STEPS
from tests.chaos.test_kill9 import check_run_history
from tests.support.forkserver import ForkedKeel, ForkServer, restartable_port
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.chaos

CONFIG = Path(__file__).parent / "keel.json"
N_RUNS = 300
FOLLOW_EVERY = 8  # every 8th run is created with POST .../runs/stream and followed (38 runs)
N_APIS, N_WORKERS = 2, 3
CREATE_SECONDS = 22.0  # runs are created at a steady rate over this window
CHAOS_SECONDS = 26.0  # processes are killed over this window (from the first create)
KILL_EVERY = (0.3, 0.7)  # seconds between two kills
PG_CRASH_AT = (0.4, 0.6)  # share of the chaos window at which PostgreSQL is killed
STEP_SECONDS = "0.02,0.06"  # how long each step of the recording graph sleeps
LEASE_SECONDS = "3"  # Keel's default, explicit here
CREATE_DEADLINE = 60.0  # a run not accepted this long after its creation started fails the test
DRAIN_TIMEOUT = 60.0  # after the chaos, every run must end within this
BODY = {
    "assistant_id": "recording",
    "input": {"steps": []},
    "durability": "sync",
    "multitask_strategy": "reject",
}
FOLLOW_MODES = ["values", "updates"]
TERMINAL = ("success", "error", "timeout", "interrupted")
FENCED, LOST = "lease not renewed in time", "lease lost to another worker"  # worker log lines


class Retry(Exception):
    """A response worth retrying elsewhere (the server or its database is restarting)."""


# ------------------------------------------------------------------ bookkeeping
@dataclass
class Life:
    """One incarnation of a Keel process (epoch seconds)."""

    kind: str  # "api" or "worker"
    name: str
    pid: int
    spawned: float
    ready: float | None = None
    killed: float | None = None  # when it was seen dead after SIGKILL


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    event: str
    data: str


@dataclass
class Plan:
    index: int
    thread_id: str
    api: int  # the API process its creation starts on
    followed: bool
    due: float  # seconds after the start of the load
    run_id: str | None = None
    requests: int = 0  # create (or create-and-stream) requests sent
    received: list[SseEvent] = field(default_factory=list)
    connections: int = 0  # stream responses opened
    drops: int = 0  # open streams cut off
    refused: int = 0  # requests that failed before a stream was open
    early_ends: int = 0  # streams that ended cleanly before the run was terminal
    error: str | None = None


@dataclass(frozen=True)
class Span:
    """One step execution: [start, end] in one process (end: when it returned, was cancelled,
    or its process was seen dead; inf if unknown)."""

    seq: int
    run_id: str
    step: str
    attempt: int
    pid: int
    start: float
    end: float


def check_overlaps(spans: list[Span]) -> list[str]:
    """Pairs of one run's step executions that overlap in time: a six-step sequential run never
    executes two steps at once, so any overlap means two executors ran it at the same time."""
    problems = []
    ordered = sorted(spans, key=lambda s: (s.start, s.seq))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b.start >= a.end:
                break
            who = f"pids {a.pid} and {b.pid}" if a.pid != b.pid else f"pid {a.pid} twice"
            problems.append(
                f"{a.step} (attempt {a.attempt}) and {b.step} (attempt {b.attempt}) overlap "
                f"({who}): [{a.start:.3f}, {a.end:.3f}] vs [{b.start:.3f}, {b.end:.3f}]"
            )
    return problems


def test_overlap_checker_rejects_concurrent_executors() -> None:
    def span(seq: int, step: str, attempt: int, pid: int, start: float, end: float) -> Span:
        return Span(seq, "r", step, attempt, pid, start, end)

    sequential = [
        span(1, "step1", 1, 10, 0.0, 1.0),
        span(2, "step2", 1, 10, 1.0, 2.0),
        span(3, "step2", 2, 11, 5.0, 6.0),  # the in-flight step again, after pid 10 died
        span(4, "step3", 2, 11, 6.0, 7.0),
    ]
    assert check_overlaps(sequential) == []
    two_workers = [*sequential[:2], span(3, "step2", 2, 11, 1.5, 2.5)]
    assert check_overlaps(two_workers)
    # a step of a killed process lasts until its death (inf when unknown)
    assert check_overlaps([span(1, "step3", 1, 10, 0.0, math.inf), span(2, "step3", 2, 11, 9, 10)])
    assert check_overlaps([span(1, "step1", 1, 10, 0.0, 3.0), span(2, "step1", 2, 10, 2.0, 4.0)])


def read_spans(path: Path, deaths: dict[int, float]) -> list[Span]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT seq, run_id, step, attempt, pid, at, ended FROM executions ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    spans = []
    for seq, run_id, step, attempt, pid, at, ended in rows:
        end = ended if ended is not None else deaths.get(pid, math.inf)
        spans.append(Span(seq, run_id, step, attempt, pid, at, end))
    return spans


def by_attempt(spans: list[Span]) -> dict[int, list[Span]]:
    out: dict[int, list[Span]] = collections.defaultdict(list)
    for s in sorted(spans, key=lambda s: s.seq):
        out[s.attempt].append(s)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ the fleet
class Fleet:
    """PostgreSQL, the fork server, the API and worker processes, and their lives."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.created = time.time()
        self.pg = PgCluster(tmp_path / "pg", fast=True)
        self.pg.port = restartable_port()  # it restarts on the same port
        self.side_db = tmp_path / "side.db"
        self.forks: ForkServer | None = None
        self.apis: list[ForkedKeel] = []
        self.workers: list[ForkedKeel] = []
        self.lives: list[Life] = []
        self.current: dict[str, Life] = {}
        self.database = ""

    def start(self) -> None:
        self.pg.start()
        self.database = self.pg.create_database()
        self.forks = ForkServer()
        env = {
            **os.environ,
            "KEEL_LOG_LEVEL": "warning",
            "KEEL_LEASE_SECONDS": LEASE_SECONDS,
            "KEEL_MAX_ATTEMPTS": "1000",  # this test kills far more often than production
            SIDE_DB_ENV: str(self.side_db),
            STEP_SECONDS_ENV: STEP_SECONDS,
        }
        common = ["--config", str(CONFIG), "--database", self.database]
        logs = self.tmp / "logs"
        for i in range(N_APIS):
            port = restartable_port()
            argv = ["serve", *common, "--port", str(port), "--no-workers"]
            url = f"http://127.0.0.1:{port}"
            self.apis.append(ForkedKeel(f"api{i}", self.forks, argv, env, logs, url=url))
        for i in range(N_WORKERS):
            argv = ["worker", *common]
            self.workers.append(ForkedKeel(f"worker{i}", self.forks, argv, env, logs))
        for proc in self.procs:  # one at a time: the first applies the migrations
            self.launch(proc)

    @property
    def procs(self) -> list[ForkedKeel]:
        return [*self.apis, *self.workers]

    def kind(self, proc: ForkedKeel) -> str:
        return "api" if proc.url is not None else "worker"

    def launch(self, proc: ForkedKeel) -> Life:
        spawned = time.time()
        pid = proc.spawn()
        life = Life(self.kind(proc), proc.name, pid, spawned)
        self.lives.append(life)
        self.current[proc.name] = life
        proc.wait_ready()
        life.ready = time.time()
        return life

    def kill(self, proc: ForkedKeel) -> Life:
        life = self.current.pop(proc.name)
        proc.kill9()
        life.killed = time.time()
        return life

    def is_up(self, proc: ForkedKeel) -> bool:
        life = self.current.get(proc.name)
        return life is not None and life.ready is not None

    def deaths(self) -> dict[int, float]:
        return {life.pid: life.killed for life in self.lives if life.killed is not None}

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.stop()
        if self.forks is not None:
            self.forks.close()
        self.pg.stop()

    def log_counts(self, *needles: str) -> dict[str, int]:
        counts = dict.fromkeys(needles, 0)
        for path in (self.tmp / "logs").glob("*.log"):
            text = path.read_text(errors="replace")
            for needle in needles:
                counts[needle] += text.count(needle)
        return counts


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        f.start()
        yield f
    finally:
        f.stop()


# ------------------------------------------------------------------ clients
def check(response: httpx.Response) -> None:
    if response.status_code >= 500:
        raise Retry(f"{response.status_code}: {response.text[:200]}")
    response.raise_for_status()


async def find_run(http: httpx.AsyncClient, plan: Plan) -> str | None:
    """Create the plan's thread if needed; the id of its run, if one was created already.

    A create cut off by a kill may or may not have been committed; each plan owns its thread,
    so any run on it is the plan's own."""
    thread = {"thread_id": plan.thread_id, "if_exists": "do_nothing"}
    check(await http.post("/threads", json=thread))
    response = await http.get(f"/threads/{plan.thread_id}/runs")
    check(response)
    runs = response.json()
    return str(runs[0]["run_id"]) if runs else None


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    event, data, event_id = "message", "", None
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent(event_id, event, data)
            event, data, event_id = "message", "", None
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line.startswith("id: "):
            event_id = int(line[len("id: ") :])


async def create(plan: Plan, clients: list[httpx.AsyncClient]) -> None:
    """Create the plan's run once, retrying across kills on either API process."""
    idx, deadline = plan.api, time.monotonic() + CREATE_DEADLINE
    while True:
        http = clients[idx]
        try:
            plan.run_id = await find_run(http, plan)
            if plan.run_id is not None:
                return
            plan.requests += 1
            response = await http.post(f"/threads/{plan.thread_id}/runs", json=BODY)
            if response.status_code == 409:  # an earlier, cut-off create got through
                continue
            check(response)
            plan.run_id = str(response.json()["run_id"])
            return
        except (httpx.TransportError, Retry) as exc:
            if time.monotonic() > deadline:
                plan.error = f"not accepted in {CREATE_DEADLINE}s: {exc!r}"
                return
            idx = 1 - idx
            await asyncio.sleep(0.05)


async def follow(plan: Plan, clients: list[httpx.AsyncClient]) -> None:
    """Create the run with POST .../runs/stream and follow it to its end, reconnecting with
    Last-Event-ID (to the other API process) whenever the connection drops."""
    idx, deadline = plan.api, time.monotonic() + CREATE_DEADLINE + DRAIN_TIMEOUT + 60
    last: int | None = None
    pause = 0.02
    while time.monotonic() < deadline:
        http = clients[idx]
        streaming = False
        try:
            if plan.run_id is None:
                plan.run_id = await find_run(http, plan)
            if plan.run_id is None:
                plan.requests += 1
                body = {**BODY, "stream_mode": FOLLOW_MODES, "stream_resumable": True}
                request = http.build_request(
                    "POST", f"/threads/{plan.thread_id}/runs/stream", json=body
                )
            else:
                path = f"/threads/{plan.thread_id}/runs/{plan.run_id}/stream"
                headers = {"Last-Event-ID": str(last if last is not None else 0)}
                request = http.build_request("GET", path, headers=headers)
            response = await http.send(request, stream=True)
            try:
                if response.status_code == 409 and plan.run_id is None:
                    continue  # an earlier, cut-off create got through: find it
                check(response)
                plan.connections += 1
                streaming = True
                async for ev in sse_events(response):
                    if plan.run_id is None and ev.event == "metadata":
                        plan.run_id = str(json.loads(ev.data)["run_id"])
                    plan.received.append(ev)
                    last = ev.id
            finally:
                await response.aclose()
            if plan.run_id is not None:
                run = await http.get(f"/threads/{plan.thread_id}/runs/{plan.run_id}")
                check(run)
                if run.json()["status"] in TERMINAL:
                    return
            plan.early_ends += 1  # ended cleanly, but the run goes on: follow it again
        except (httpx.TransportError, Retry):
            if streaming:
                plan.drops += 1
                pause = 0.02
            else:  # both API processes may be down: back off a little
                plan.refused += 1
                pause = min(pause * 2, 0.25)
            idx = 1 - idx
            await asyncio.sleep(pause)
    plan.error = "stream not followed to the end before the deadline"


async def replay(http: httpx.AsyncClient, plan: Plan) -> list[SseEvent]:
    path = f"/threads/{plan.thread_id}/runs/{plan.run_id}/stream"
    async with http.stream("GET", path, headers={"Last-Event-ID": "0"}) as response:
        check(response)
        return [ev async for ev in sse_events(response)]


def stream_problems(received: list[SseEvent], log: list[SseEvent]) -> list[str]:
    """How a stream differs from the run's event log (ids, names and payloads)."""
    if received == log:
        return []
    problems = []
    ids = [ev.id for ev in received]
    dup = sorted({i for i in ids if i is not None and ids.count(i) > 1})
    if dup:
        problems.append(f"ids received more than once: {dup}")
    if any(a is None or b is None or b <= a for a, b in itertools.pairwise(ids)):
        problems.append(f"ids not strictly increasing: {ids}")
    logged = {ev.id: ev for ev in log}
    missing = sorted(set(logged) - set(ids), key=lambda i: i or 0)
    if missing:
        problems.append(f"missing {len(missing)} logged events: ids {missing}")
    extra = [ev.id for ev in received if ev.id not in logged]
    if extra:
        problems.append(f"events that are not in the log: ids {extra}")
    changed = [ev.id for ev in received if ev.id in logged and logged[ev.id] != ev]
    if changed:
        problems.append(f"events differing from the log: ids {changed}")
    return problems or ["differs from the log"]


# ------------------------------------------------------------------------ the test
@pytest.mark.timeout(300)
async def test_pg_chaos(fleet: Fleet) -> None:
    seed = int(os.environ.get("KEEL_CHAOS_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    print(f"\npg chaos seed={seed} (KEEL_CHAOS_SEED replays the schedule)")
    t0 = time.time()
    plans = [
        Plan(
            i,
            str(uuid.uuid4()),
            i % N_APIS,
            followed=i % FOLLOW_EVERY == 0,
            due=CREATE_SECONDS * i / N_RUNS,
        )
        for i in range(N_RUNS)
    ]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    timeout = httpx.Timeout(10.0, read=20.0)
    clients = [
        httpx.AsyncClient(base_url=str(api.url), timeout=timeout, limits=limits)
        for api in fleet.apis
    ]
    kills: collections.Counter[str] = collections.Counter()
    pg_down: list[tuple[float, float]] = []
    restarts: set[asyncio.Task[None]] = set()
    restart_errors: list[BaseException] = []

    async def restart(proc: ForkedKeel) -> None:
        try:
            await asyncio.to_thread(fleet.launch, proc)
        except Exception as exc:
            restart_errors.append(exc)

    async def chaos(start: float) -> None:
        pg_at = start + CHAOS_SECONDS * rng.uniform(*PG_CRASH_AT)
        while True:
            await asyncio.sleep(rng.uniform(*KILL_EVERY))
            if restart_errors:
                raise restart_errors[0]
            now = time.monotonic()
            if now > start + CHAOS_SECONDS:
                return
            if not pg_down and now >= pg_at:
                down = time.time()
                await asyncio.to_thread(fleet.pg.kill9)
                await asyncio.to_thread(fleet.pg.start)
                pg_down.append((down, time.time()))
            # Only processes that are up (not still restarting) are killed.
            candidates = [proc for proc in fleet.procs if fleet.is_up(proc)]
            if not candidates:
                continue
            victim = rng.choice(candidates)
            await asyncio.to_thread(fleet.kill, victim)
            kills[fleet.kind(victim)] += 1
            task = asyncio.create_task(restart(victim))
            restarts.add(task)
            task.add_done_callback(restarts.discard)

    async def client(plan: Plan, start: float) -> None:
        await asyncio.sleep(max(start + plan.due - time.monotonic(), 0.0))
        await (follow if plan.followed else create)(plan, clients)

    load_start = time.monotonic()
    chaos_task = asyncio.create_task(chaos(load_start))
    client_tasks = [asyncio.create_task(client(p, load_start)) for p in plans]
    try:
        await chaos_task
        chaos_done = time.time()
        while restarts:  # every process is up again
            await asyncio.gather(*restarts)
        if restart_errors:
            raise restart_errors[0]
        await asyncio.wait_for(asyncio.gather(*client_tasks), CREATE_DEADLINE + DRAIN_TIMEOUT)
        not_accepted = {p.thread_id: p.error for p in plans if p.run_id is None or p.error}
        assert not not_accepted, f"runs not accepted or not followed: {not_accepted}"
        run_ids = [str(p.run_id) for p in plans]

        # Drain: every run terminal.
        drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        async with await psycopg.AsyncConnection.connect(fleet.database) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT run_id, thread_id, status, attempt FROM runs WHERE run_id = ANY(%s)",
                    [run_ids],
                )
                rows = {str(r[0]): r for r in await cur.fetchall()}
                pending = [r for r in run_ids if r not in rows or rows[r][2] not in TERMINAL]
                if not pending or time.monotonic() > drain_deadline:
                    break
                await asyncio.sleep(0.2)
            all_done = time.time()
            assert not pending, f"{len(pending)} runs not finished in {DRAIN_TIMEOUT}s"
            cur = await conn.execute(
                "SELECT thread_id, count(*) FROM runs WHERE thread_id = ANY(%s) GROUP BY 1",
                [[p.thread_id for p in plans]],
            )
            runs_per_thread = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            followed = [p for p in plans if p.followed]
            cur = await conn.execute(
                "SELECT run_id, seq, event, data FROM run_events WHERE run_id = ANY(%s) "
                "ORDER BY run_id, seq",
                [[p.run_id for p in followed]],
            )
            logs: dict[str, list[SseEvent]] = collections.defaultdict(list)
            for run_id, seq, event, data in await cur.fetchall():
                logs[str(run_id)].append(SseEvent(int(seq), event, bytes(data).decode()))

        # Final states and full replays, through the API processes.
        gate = asyncio.Semaphore(16)

        async def state_of(plan: Plan) -> Any:
            async with gate:
                for attempt in range(5):  # a pooled connection may be to a killed process
                    try:
                        http = clients[(plan.index + attempt) % N_APIS]
                        response = await http.get(f"/threads/{plan.thread_id}/state")
                        check(response)
                        return response.json()["values"]
                    except (httpx.TransportError, Retry):
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.1)
                raise AssertionError("unreachable")

        async def replay_of(plan: Plan) -> list[SseEvent]:
            async with gate:
                for attempt in range(5):
                    try:
                        return await replay(clients[(plan.index + 1 + attempt) % N_APIS], plan)
                    except (httpx.TransportError, Retry):
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.1)
                raise AssertionError("unreachable")

        states = await asyncio.gather(*(state_of(p) for p in plans))
        replays = await asyncio.gather(*(replay_of(p) for p in followed))
    finally:
        for task in [chaos_task, *client_tasks]:
            task.cancel()
        await asyncio.gather(chaos_task, *client_tasks, *restarts, return_exceptions=True)
        for http in clients:
            await http.aclose()
    spans = read_spans(fleet.side_db, fleet.deaths())
    fenced = fleet.log_counts(FENCED, LOST)

    # ---------------------------------------------------------------- figures
    spans_of: dict[str, list[Span]] = collections.defaultdict(list)
    for s in spans:
        spans_of[s.run_id].append(s)
    histories = {r: by_attempt(spans_of[r]) for r in run_ids}
    attempts = collections.Counter(int(rows[r][3]) for r in run_ids)
    repeats = len([s for s in spans if s.run_id in rows]) - len(STEPS) * len(run_ids)
    interrupted = sum(len(h) - 1 for h in histories.values())
    recoveries = []
    for h in histories.values():
        tries = list(h.values())
        for before, after in itertools.pairwise(tries):
            recoveries.append(min(s.start for s in after) - max(s.end for s in before))
    stale = {s.pid for r, h in histories.items() for a, ss in h.items() for s in ss if a != max(h)}
    worker_kills = [life for life in fleet.lives if life.kind == "worker" and life.killed]
    mid_run = [life for life in worker_kills if life.pid in stale]
    startup = [life.ready - life.spawned for life in fleet.lives if life.ready is not None]
    drops = sum(p.drops for p in followed)
    refused = sum(p.refused for p in followed)
    received = sum(len(p.received) for p in followed)

    print(
        f"  {len(plans)} runs ({len(followed)} followed by streams) on {N_APIS} API + "
        f"{N_WORKERS} worker processes; statuses "
        f"{dict(collections.Counter(rows[r][2] for r in run_ids))}"
    )
    print(
        f"  kills: {sum(kills.values())} ({kills['api']} API, {kills['worker']} worker, of which "
        f"{len(mid_run)} cut runs mid-step); PostgreSQL restarts: {len(pg_down)} "
        + "".join(f"(kill -9 -> accepting again in {b - a:.2f}s)" for a, b in pg_down)
    )
    print(
        f"  process restarts: {len(fleet.lives) - N_APIS - N_WORKERS}; spawn -> ready median "
        f"{statistics.median(startup):.2f}s, max {max(startup):.2f}s"
    )
    print(
        "  attempts per run (runs.attempt): "
        + ", ".join(f"{a}: {n}" for a, n in sorted(attempts.items()))
    )
    print(
        f"  interrupted attempts that had run a step: {interrupted}; step executions "
        f"{len(spans)} for {len(STEPS) * len(run_ids)} steps, repeats (in-flight steps run "
        f"again): {repeats}; runs stopped by the lease fence: {fenced[FENCED]}, after losing "
        f"their lease: {fenced[LOST]}"
    )
    if recoveries:
        print(
            f"  recovery (interrupted attempt's end -> next attempt's first step): median "
            f"{statistics.median(recoveries):.2f}s, max {max(recoveries):.2f}s"
        )
    print(
        f"  streams: {received} events received, {sum(p.connections for p in followed)} "
        f"connections ({drops} cut off, {refused} refused requests), "
        f"{sum(p.early_ends for p in followed)} ended early; create requests: "
        f"{sum(p.requests for p in plans)} for {len(plans)} runs"
    )
    print(
        f"  chaos ended {chaos_done - t0:.1f}s after the start, all runs done at "
        f"{all_done - t0:.1f}s; total time {time.time() - fleet.created:.1f}s (with "
        f"{t0 - fleet.created:.1f}s of setup: PostgreSQL, the fork server, first starts)"
    )

    # ---------------------------------------------------------------- guarantees
    failures: list[str] = []
    for plan, values in zip(plans, states, strict=True):
        run_id = str(plan.run_id)
        tag = f"run {run_id} (thread {plan.thread_id})"
        if runs_per_thread.get(plan.thread_id) != 1:
            failures.append(f"{tag}: {runs_per_thread.get(plan.thread_id)} runs on its thread")
        if rows[run_id][2] != "success":
            failures.append(f"{tag}: status {rows[run_id][2]!r}")
        steps = values.get("steps") if isinstance(values, dict) else None
        if steps != list(STEPS):
            failures.append(f"{tag}: final state steps {steps}")
        history = {a: [s.step for s in ss] for a, ss in histories[run_id].items()}
        failures += [f"{tag}: {p} {history}" for p in check_run_history(history)]
        failures += [f"{tag}: {p}" for p in check_overlaps(spans_of[run_id])]
    for plan, full in zip(followed, replays, strict=True):
        log = logs[str(plan.run_id)]
        tag = f"run {plan.run_id}"
        failures += [f"{tag}: followed stream {p}" for p in stream_problems(plan.received, log)]
        failures += [f"{tag}: replay from 0 {p}" for p in stream_problems(full, log)]
        if plan.early_ends:
            failures.append(f"{tag}: {plan.early_ends} streams ended before the run did")
    shown = failures[:20] + ([f"... and {len(failures) - 20} more"] if len(failures) > 20 else [])
    assert not failures, "\n".join(shown)
    # The chaos must actually have happened, or the checks above prove little.
    assert len(pg_down) == 1, "PostgreSQL was not restarted"
    assert kills["api"] >= 6 and kills["worker"] >= 10, f"too few kills: {dict(kills)}"
    assert len(mid_run) >= 8, f"only {len(mid_run)} worker kills landed mid-run"
    assert interrupted >= 20, f"only {interrupted} attempts interrupted"
    assert drops >= 10, f"followed streams lost their connection only {drops} times"
