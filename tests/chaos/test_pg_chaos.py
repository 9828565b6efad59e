"""Chaos on PostgreSQL: kill -9 API and worker processes (and PostgreSQL once) under load.

Two API-only processes (`keel serve --no-workers`) and three `keel worker` processes share one
private PostgreSQL cluster (tests/chaos/pg_fleet.py). Clients create runs of the six-step
recording graph (`recording_graph.py`, durability "sync") through both API processes at a steady
rate while, every ~0.5 s, an API or worker process is killed with SIGKILL and restarted;
PostgreSQL itself is killed (-9) and restarted once. Every 8th run is created with
POST .../runs/stream and followed to the end by a client that reconnects with Last-Event-ID to the
other API process whenever its connection drops.

The chaos is made to happen, not hoped for: kills are aimed, and go on until each quota is met
(bounded in time, generously for a loaded machine). A worker is killed while the side table shows
it in the middle of a step, and the kill counts as a cut when, once it is dead, that step still has
no end; an API process is killed while a followed stream on it is open and has received an event;
PostgreSQL is killed while a step is in flight. Runs are created until the chaos is over, so
there is always something in flight to cut. Afterwards the side table of step executions, the
`runs` and `run_events` tables and the API are checked:

- every run was accepted once, ended `success`, with exactly the six steps in order in its state;
- no step ran again after its checkpoint was written (only the step in flight when its executor
  died or stopped may repeat), checked per attempt by test_kill9's checker;
- no two executions of a run overlap in time (so no run was executed by two workers at once),
  from each step's start and end time (or its process's death);
- every followed stream received the run's full event log exactly once, in order (ids and
  payloads), and a replay with Last-Event-ID 0 after the end returns the same log;
- every step a kill cut is followed by a later attempt of its run.

Processes are forked from a pre-imported zygote (tests/support/forkserver.py): a plain
`python -m keel.cli` start costs 1-2 CPU seconds of imports, more than two cores can pay twice a
second. Set KEEL_CHAOS_SEED to replay a schedule (as far as the machine's timing allows).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import math
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from tests.chaos.pg_clients import (
    CREATE_DEADLINE,
    DRAIN_TIMEOUT,
    TERMINAL,
    Plan,
    Retry,
    SseEvent,
    check,
    create,
    follow,
    replay,
    stream_problems,
)
from tests.chaos.pg_fleet import (
    N_APIS,
    N_WORKERS,
    Fleet,
    Span,
    by_attempt,
    check_overlaps,
    read_spans,
)
from tests.chaos.recording_graph import STEPS
from tests.chaos.side_table import cut_attempts, in_step
from tests.chaos.test_kill9 import check_run_history
from tests.support.forkserver import ForkedKeel

pytestmark = pytest.mark.chaos
T = TypeVar("T")

MIN_RUNS = 300  # runs are created until the chaos is over, and at least this many
RUN_EVERY = 22.0 / 300  # seconds between two creates (the load's steady rate)
FOLLOW_EVERY = 8  # every 8th run is created with POST .../runs/stream and followed
KILL_EVERY = (0.3, 0.7)  # seconds between two kills
RANDOM_KILLS = 0.3  # share of kills of any process that is up (not aimed at a quota)
CHAOS_LIMIT = 240.0  # the quotas must be met within this (~25 s on an idle 2-core machine)
FENCED, LOST = "lease not renewed in time", "lease lost to another worker"  # worker log lines


@dataclass(frozen=True)
class Quotas:
    """What the chaos must have done before it stops."""

    kills: int = 40
    api_kills: int = 6
    worker_kills: int = 10
    cuts: int = 8  # worker kills that landed in the middle of a step
    cut_attempts: int = 20  # run attempts those kills left in the middle of a step
    drops: int = 10  # open followed streams cut off by a kill
    pg_after_cuts: int = 4  # PostgreSQL is killed once this many cuts happened


NEED = Quotas()


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


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        f.start()
        yield f
    finally:
        f.stop()


# ------------------------------------------------------------------ the load
class Load:
    """Clients creating (and following) runs at a steady rate until told to stop."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self.plans: list[Plan] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.open_on: list[set[int]] = [set() for _ in range(N_APIS)]
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while len(self.plans) < MIN_RUNS or not self.stop.is_set():
            i = len(self.plans)
            plan = Plan(i, str(uuid.uuid4()), i % N_APIS, followed=i % FOLLOW_EVERY == 0)
            self.plans.append(plan)
            work = follow(plan, self.clients, self.open_on) if plan.followed else None
            self.tasks.append(asyncio.create_task(work or create(plan, self.clients)))
            await asyncio.sleep(RUN_EVERY)

    @property
    def followed(self) -> list[Plan]:
        return [p for p in self.plans if p.followed]

    def drops(self) -> int:
        return sum(p.drops for p in self.followed)


# ------------------------------------------------------------------ the chaos
class Chaos:
    """Kills (and restarts) processes until every quota of NEED is met, or fails after
    CHAOS_LIMIT. Each aimed action acts only when its condition holds (else it returns False)."""

    def __init__(self, fleet: Fleet, load: Load, rng: random.Random) -> None:
        self.fleet, self.load, self.rng = fleet, load, rng
        self.kills: collections.Counter[str] = collections.Counter()
        self.cuts = 0
        self.cut_attempts = 0
        self.cut_pids: set[int] = set()
        self.pg_down: list[tuple[float, float]] = []
        self.restarts: set[asyncio.Task[None]] = set()
        self.restart_errors: list[BaseException] = []

    def unmet(self) -> dict[str, tuple[int, int]]:
        """Quotas not met yet: name -> (done, needed)."""
        done = {
            "kills": (sum(self.kills.values()), NEED.kills),
            "api_kills": (self.kills["api"], NEED.api_kills),
            "worker_kills": (self.kills["worker"], NEED.worker_kills),
            "cuts": (self.cuts, NEED.cuts),
            "cut_attempts": (self.cut_attempts, NEED.cut_attempts),
            "drops": (self.load.drops(), NEED.drops),
            "pg_restarts": (len(self.pg_down), 1),
        }
        return {name: pair for name, pair in done.items() if pair[0] < pair[1]}

    async def run(self) -> None:
        deadline = time.monotonic() + CHAOS_LIMIT
        while unmet := self.unmet():
            if time.monotonic() > deadline:
                raise AssertionError(f"chaos quotas (done, needed) not met in time: {unmet}")
            await asyncio.sleep(self.rng.uniform(*KILL_EVERY))
            if self.restart_errors:
                raise self.restart_errors[0]
            await self.step(unmet)

    async def step(self, unmet: dict[str, tuple[int, int]]) -> None:
        """One aimed action for an unmet quota, when one applies right now; else (and for a
        share RANDOM_KILLS of the steps) the kill of any process that is up."""
        aimed: list[Callable[[], Awaitable[bool]]] = []
        if self.rng.random() >= RANDOM_KILLS:
            if "pg_restarts" in unmet and self.cuts >= NEED.pg_after_cuts:
                aimed.append(self.restart_pg)
            if {"drops", "api_kills"} & set(unmet):
                aimed.append(self.cut_stream)
            if {"cuts", "cut_attempts", "worker_kills"} & set(unmet):
                aimed.append(self.cut_step)
        for action in self.rng.sample(aimed, len(aimed)):
            if await action():
                return
        victims = self.fleet.up(self.fleet.procs)
        if victims:
            await self.kill(self.rng.choice(victims))

    async def kill(self, proc: ForkedKeel) -> int:
        """SIGKILL `proc`; once it is gone, restart it in the background. Returns its pid."""
        life = await asyncio.to_thread(self.fleet.kill, proc)
        self.kills[life.kind] += 1
        if life.kind == "worker":
            await self.count_cut(life.pid)
        task = asyncio.create_task(self.restart(proc))
        self.restarts.add(task)
        task.add_done_callback(self.restarts.discard)
        return life.pid

    async def count_cut(self, pid: int) -> None:
        """A dead worker's steps that never ended were cut by its death."""
        cut = await asyncio.to_thread(cut_attempts, self.fleet.side_db, pid)
        if cut:
            self.cuts += 1
            self.cut_attempts += cut
            self.cut_pids.add(pid)

    async def restart(self, proc: ForkedKeel) -> None:
        try:
            await asyncio.to_thread(self.fleet.launch, proc)
        except Exception as exc:
            self.restart_errors.append(exc)

    async def cut_step(self) -> bool:
        """Kill a worker that is in the middle of a step."""
        workers = {self.fleet.pid(w): w for w in self.fleet.up(self.fleet.workers)}
        busy = await asyncio.to_thread(in_step, self.fleet.side_db, list(workers))
        if not busy:
            return False
        await self.kill(workers[self.rng.choice(sorted(busy))])
        return True

    async def cut_stream(self) -> bool:
        """Kill an API process that has an open followed stream which received an event."""
        victims = [api for i, api in enumerate(self.fleet.apis) if self.load.open_on[i]]
        victims = self.fleet.up(victims)
        if not victims:
            return False
        await self.kill(self.rng.choice(victims))
        return True

    async def restart_pg(self) -> bool:
        """kill -9 PostgreSQL while a step is in flight, once every Keel process is up (a
        process starting while the database is away may fail to start), then start it again."""
        while self.restarts:
            await asyncio.gather(*self.restarts)
        pids = [self.fleet.pid(w) for w in self.fleet.up(self.fleet.workers)]
        if not await asyncio.to_thread(in_step, self.fleet.side_db, pids):
            return False
        down = time.time()
        await asyncio.to_thread(self.fleet.pg.kill9)
        await asyncio.to_thread(self.fleet.pg.start)
        self.pg_down.append((down, time.time()))
        return True

    async def settle(self) -> None:
        """Until every killed process is up again."""
        while self.restarts:
            await asyncio.gather(*self.restarts)
        if self.restart_errors:
            raise self.restart_errors[0]


# ------------------------------------------------------------------------ the test
@dataclass
class Outcome:
    """What the database and the API say after the chaos."""

    rows: dict[str, Any]  # run id -> (run_id, thread_id, status, attempt)
    runs_per_thread: dict[str, int]
    logs: dict[str, list[SseEvent]]  # run id -> its event log (followed runs)
    states: list[Any]  # per plan: the thread's final values
    replays: list[list[SseEvent]]  # per followed plan: a replay from Last-Event-ID 0
    all_done: float = 0.0


async def drain(fleet: Fleet, load: Load) -> tuple[dict[str, Any], float]:
    """Wait until every run is terminal; their rows and when that was seen."""
    run_ids = [str(p.run_id) for p in load.plans]
    deadline = time.monotonic() + DRAIN_TIMEOUT
    async with await psycopg.AsyncConnection.connect(fleet.database) as conn:
        while True:
            cur = await conn.execute(
                "SELECT run_id, thread_id, status, attempt FROM runs WHERE run_id = ANY(%s)",
                [run_ids],
            )
            rows = {str(r[0]): r for r in await cur.fetchall()}
            pending = [r for r in run_ids if r not in rows or rows[r][2] not in TERMINAL]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert not pending, f"{len(pending)} runs not finished in {DRAIN_TIMEOUT}s"
    return rows, time.time()


async def read_back(fleet: Fleet, load: Load) -> tuple[dict[str, int], dict[str, list[SseEvent]]]:
    """Runs per thread, and the event logs of the followed runs, from the database."""
    async with await psycopg.AsyncConnection.connect(fleet.database) as conn:
        cur = await conn.execute(
            "SELECT thread_id, count(*) FROM runs WHERE thread_id = ANY(%s) GROUP BY 1",
            [[p.thread_id for p in load.plans]],
        )
        runs_per_thread = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT run_id, seq, event, data FROM run_events WHERE run_id = ANY(%s) "
            "ORDER BY run_id, seq",
            [[p.run_id for p in load.followed]],
        )
        logs: dict[str, list[SseEvent]] = collections.defaultdict(list)
        for run_id, seq, event, data in await cur.fetchall():
            logs[str(run_id)].append(SseEvent(int(seq), event, bytes(data).decode()))
    return runs_per_thread, logs


async def retried(
    clients: list[httpx.AsyncClient], first: int, call: Callable[[httpx.AsyncClient], Awaitable[T]]
) -> T:
    """`call` on API process `first`, else on the next: a pooled connection may be to a process
    killed meanwhile."""
    for attempt in range(5):
        try:
            return await call(clients[(first + attempt) % N_APIS])
        except (httpx.TransportError, Retry):
            if attempt == 4:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def final_state(plan: Plan, http: httpx.AsyncClient) -> Any:
    response = await http.get(f"/threads/{plan.thread_id}/state")
    check(response)
    return response.json()["values"]


async def through_api(
    clients: list[httpx.AsyncClient], load: Load
) -> tuple[list[Any], list[list[SseEvent]]]:
    """Final states of every plan's thread and full replays of the followed runs."""
    gate = asyncio.Semaphore(16)

    async def gated(first: int, call: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
        async with gate:
            return await retried(clients, first, call)

    states = [gated(p.index, functools.partial(final_state, p)) for p in load.plans]
    replays = [gated(p.index + 1, functools.partial(replay, plan=p)) for p in load.followed]
    return list(await asyncio.gather(*states)), list(await asyncio.gather(*replays))


async def chaos_under_load(fleet: Fleet, rng: random.Random) -> tuple[Load, Chaos, Outcome, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    timeout = httpx.Timeout(10.0, read=20.0)
    clients = [
        httpx.AsyncClient(base_url=str(api.url), timeout=timeout, limits=limits)
        for api in fleet.apis
    ]
    load = Load(clients)
    chaos = Chaos(fleet, load, rng)
    load_task = asyncio.create_task(load.run())
    chaos_task = asyncio.create_task(chaos.run())
    try:
        await chaos_task
        chaos_done = time.time()
        load.stop.set()
        await load_task
        await chaos.settle()
        await asyncio.wait_for(asyncio.gather(*load.tasks), CREATE_DEADLINE + DRAIN_TIMEOUT)
        failed = {p.thread_id: p.error for p in load.plans if p.run_id is None or p.error}
        assert not failed, f"runs not accepted or not followed: {failed}"
        rows, all_done = await drain(fleet, load)
        runs_per_thread, logs = await read_back(fleet, load)
        states, replays = await through_api(clients, load)
    finally:
        for task in [chaos_task, load_task, *load.tasks]:
            task.cancel()
        await asyncio.gather(
            chaos_task, load_task, *load.tasks, *chaos.restarts, return_exceptions=True
        )
        for http in clients:
            await http.aclose()
    outcome = Outcome(rows, runs_per_thread, logs, states, replays, all_done)
    return load, chaos, outcome, chaos_done


@pytest.mark.timeout(900)  # every wait is bounded well below this; ~35 s on an idle machine
async def test_pg_chaos(fleet: Fleet) -> None:
    seed = int(os.environ.get("KEEL_CHAOS_SEED") or random.randrange(1 << 32))
    print(f"\npg chaos seed={seed} (KEEL_CHAOS_SEED replays the schedule)")
    t0 = time.time()
    load, chaos, outcome, chaos_done = await chaos_under_load(fleet, random.Random(seed))
    spans = read_spans(fleet.side_db, fleet.deaths())
    spans_of: dict[str, list[Span]] = collections.defaultdict(list)
    for s in spans:
        spans_of[s.run_id].append(s)
    histories = {str(p.run_id): by_attempt(spans_of[str(p.run_id)]) for p in load.plans}
    report(fleet, load, chaos, outcome, spans, histories)
    print(
        f"  chaos ended {chaos_done - t0:.1f}s after the start, all runs done at "
        f"{outcome.all_done - t0:.1f}s; total time {time.time() - fleet.created:.1f}s (with "
        f"{t0 - fleet.created:.1f}s of setup: PostgreSQL, the fork server, first starts)"
    )
    failures = run_failures(load, outcome, histories, spans_of)
    failures += stream_failures(load, outcome)
    shown = failures[:20] + ([f"... and {len(failures) - 20} more"] if len(failures) > 20 else [])
    assert not failures, "\n".join(shown)
    # Each cut left an unfinished step in an attempt of a run that then succeeded: so a later
    # attempt must exist (the chaos loop ran until NEED's quotas were met).
    stale = {s.pid for h in histories.values() for a, ss in h.items() for s in ss if a != max(h)}
    assert chaos.cut_pids <= stale, f"cut pids without a later attempt: {chaos.cut_pids - stale}"
    interrupted = sum(len(h) - 1 for h in histories.values())
    assert interrupted >= chaos.cut_attempts, (interrupted, chaos.cut_attempts)


def run_failures(
    load: Load,
    outcome: Outcome,
    histories: dict[str, dict[int, list[Span]]],
    spans_of: dict[str, list[Span]],
) -> list[str]:
    failures: list[str] = []
    for plan, values in zip(load.plans, outcome.states, strict=True):
        run_id = str(plan.run_id)
        tag = f"run {run_id} (thread {plan.thread_id})"
        if outcome.runs_per_thread.get(plan.thread_id) != 1:
            failures.append(f"{tag}: {outcome.runs_per_thread.get(plan.thread_id)} runs on it")
        if outcome.rows[run_id][2] != "success":
            failures.append(f"{tag}: status {outcome.rows[run_id][2]!r}")
        steps = values.get("steps") if isinstance(values, dict) else None
        if steps != list(STEPS):
            failures.append(f"{tag}: final state steps {steps}")
        history = {a: [s.step for s in ss] for a, ss in histories[run_id].items()}
        failures += [f"{tag}: {p} {history}" for p in check_run_history(history)]
        failures += [f"{tag}: {p}" for p in check_overlaps(spans_of[run_id])]
    return failures


def stream_failures(load: Load, outcome: Outcome) -> list[str]:
    failures: list[str] = []
    for plan, full in zip(load.followed, outcome.replays, strict=True):
        log = outcome.logs[str(plan.run_id)]
        tag = f"run {plan.run_id}"
        failures += [f"{tag}: followed stream {p}" for p in stream_problems(plan.received, log)]
        failures += [f"{tag}: replay from 0 {p}" for p in stream_problems(full, log)]
        if plan.early_ends:
            failures.append(f"{tag}: {plan.early_ends} streams ended before the run did")
    return failures


def report(
    fleet: Fleet,
    load: Load,
    chaos: Chaos,
    outcome: Outcome,
    spans: list[Span],
    histories: dict[str, dict[int, list[Span]]],
) -> None:
    plans, followed, rows = load.plans, load.followed, outcome.rows
    statuses = dict(collections.Counter(r[2] for r in rows.values()))
    attempts = collections.Counter(int(r[3]) for r in rows.values())
    repeats = len([s for s in spans if s.run_id in rows]) - len(STEPS) * len(plans)
    recoveries = [
        min(s.start for s in after) - max(s.end for s in before)
        for h in histories.values()
        for before, after in itertools.pairwise(h.values())
    ]
    startup = [life.ready - life.spawned for life in fleet.lives if life.ready is not None]
    fenced = fleet.log_counts(FENCED, LOST)
    print(
        f"  {len(plans)} runs ({len(followed)} followed by streams) on {N_APIS} API + "
        f"{N_WORKERS} worker processes; statuses {statuses}"
    )
    print(
        f"  kills: {sum(chaos.kills.values())} ({chaos.kills['api']} API, "
        f"{chaos.kills['worker']} worker, of which {chaos.cuts} cut {chaos.cut_attempts} run "
        f"attempts mid-step); PostgreSQL restarts: {len(chaos.pg_down)} "
        + "".join(f"(kill -9 -> accepting again in {b - a:.2f}s)" for a, b in chaos.pg_down)
    )
    print(
        f"  process restarts: {len(fleet.lives) - N_APIS - N_WORKERS}; spawn -> ready median "
        f"{statistics.median(startup):.2f}s, max {max(startup):.2f}s"
    )
    print("  attempts per run: " + ", ".join(f"{a}: {n}" for a, n in sorted(attempts.items())))
    print(
        f"  interrupted attempts that had run a step: "
        f"{sum(len(h) - 1 for h in histories.values())}; step executions {len(spans)} for "
        f"{len(STEPS) * len(plans)} steps, repeats (in-flight steps run again): {repeats}; runs "
        f"stopped by the lease fence: {fenced[FENCED]}, after losing their lease: {fenced[LOST]}"
    )
    if recoveries:
        print(
            f"  recovery (interrupted attempt's end -> next attempt's first step): median "
            f"{statistics.median(recoveries):.2f}s, max {max(recoveries):.2f}s"
        )
    print(
        f"  streams: {sum(len(p.received) for p in followed)} events received, "
        f"{sum(p.connections for p in followed)} connections ({load.drops()} cut off, "
        f"{sum(p.refused for p in followed)} refused requests), "
        f"{sum(p.early_ends for p in followed)} ended early; create requests: "
        f"{sum(p.requests for p in plans)} for {len(plans)} runs"
    )
