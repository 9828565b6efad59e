"""The fleet of test_pg_chaos: a private PostgreSQL cluster, Keel API and worker processes forked
from a pre-imported zygote (tests/support/forkserver.py), their lives, and what the recording
graph's side table (tests/chaos/recording_graph.py) says about step executions."""

from __future__ import annotations

import collections
import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.recording_graph import SIDE_DB_ENV, STEP_SECONDS_ENV
from tests.chaos.side_table import query
from tests.support.forkserver import ForkedKeel, ForkServer, restartable_port
from tests.support.postgres import PgCluster

CONFIG = Path(__file__).parent / "keel.json"
N_APIS, N_WORKERS = 2, 3
STEP_SECONDS = "0.02,0.06"  # how long each step of the recording graph sleeps
LEASE_SECONDS = "3"  # Keel's default, explicit here


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


def by_attempt(spans: list[Span]) -> dict[int, list[Span]]:
    out: dict[int, list[Span]] = collections.defaultdict(list)
    for s in sorted(spans, key=lambda s: s.seq):
        out[s.attempt].append(s)
    return dict(sorted(out.items()))


def read_spans(path: Path, deaths: dict[int, float]) -> list[Span]:
    sql = "SELECT seq, run_id, step, attempt, pid, at, ended FROM executions ORDER BY seq"
    spans = []
    for seq, run_id, step, attempt, pid, at, ended in query(path, sql, []):
        end = ended if ended is not None else deaths.get(pid, math.inf)
        spans.append(Span(seq, run_id, step, attempt, pid, at, end))
    return spans


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
        """SIGKILL; returns once the process is gone."""
        life = self.current.pop(proc.name)
        proc.kill9()
        life.killed = time.time()
        return life

    def up(self, procs: list[ForkedKeel]) -> list[ForkedKeel]:
        """Those of `procs` that are up (not killed, not still restarting)."""
        return [p for p in procs if (life := self.current.get(p.name)) and life.ready]

    def pid(self, proc: ForkedKeel) -> int:
        return self.current[proc.name].pid

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
