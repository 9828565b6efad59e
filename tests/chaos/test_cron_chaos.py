"""Chaos: kill -9 the firing process around cron firings; every due slot fires exactly once.

100 crons (every fifth on a thread of its own, the others stateless) are made due at once, each
at its own past instant, so a process fires them in a known order; their runs are created with
`after_seconds` far away, so they stay pending and countable (`metadata.cron_id`). Ten of the
crons are armed at a fault point (keel/faults.py): `cron-fire` holds the firing inside its
transaction (run created, slot advanced, nothing committed), `cron-fired` just after the commit.
Each life starts the firing processes (SQLite: one `keel serve`; PostgreSQL: two `keel worker`s
racing for the same crons), waits until one of them is held at an armed point and kills every
process with SIGKILL at that moment; the held cron then has no run (killed before the commit) or
exactly one (after). A last life fires the rest. Then every cron has exactly one run.

Processes are forked from a pre-imported zygote (tests/support/forkserver.py): a dozen starts per
backend cost little CPU.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keel import clock
from keel.assistants import ensure_system_assistants
from keel.crons import CronService
from keel.graphs import GraphRegistry
from keel.runs import RunService
from keel.settings import load_settings
from keel.storage import make_storage
from keel.streams import StreamHub
from keel.threads import ThreadService
from tests.chaos.recording_graph import SIDE_DB_ENV
from tests.support.faults import HOLD, FaultPoints, query
from tests.support.forkserver import ForkedKeel, ForkServer, restartable_port

pytestmark = pytest.mark.chaos

CONFIG = Path(__file__).parent / "keel.json"
CRONS = 100
ARMED = {8 + 9 * k: ("cron-fire" if k % 2 == 0 else "cron-fired") for k in range(10)}
LIFE_LIMIT = 60.0  # a life must reach an armed point (or fire everything) within this


@dataclass
class Tally:
    kills: dict[str, int] = field(default_factory=lambda: collections.Counter())
    lives: int = 0


async def due_crons(database: str) -> list[str]:
    """CRONS crons due now, in firing order (each slot one second after the previous)."""
    settings = load_settings(CONFIG, database=database)
    storage = make_storage(settings)
    await storage.open()
    try:
        graphs = GraphRegistry.load(settings.graphs, settings.base_dir)
        await ensure_system_assistants(storage, graphs)
        runs = RunService(storage, graphs, StreamHub(), lambda: None, lambda *_: False)
        svc, ids = CronService(storage, runs), []
        payload = {"assistant_id": "recording", "input": {}, "after_seconds": 86400}
        for i in range(CRONS):
            tid = (await ThreadService(storage).create({}))["thread_id"] if i % 5 == 0 else None
            ids.append((await svc.create({**payload, "schedule": "0 0 1 1 *"}, tid))["cron_id"])
        base = clock.now() - 3600
        async with storage.tx() as tx:
            for i, cron_id in enumerate(ids):
                sql = "UPDATE crons SET next_run_date=? WHERE cron_id=?"
                await tx.run(sql, [clock.iso(base + i), cron_id])
    finally:
        await storage.close()
    return ids


def runs_per_cron(database: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for (meta,) in query(database, "SELECT metadata FROM runs"):
        counts[(meta if isinstance(meta, dict) else json.loads(meta))["cron_id"]] += 1
    return counts


def still_due(database: str) -> int:
    sql = "SELECT count(*) FROM crons WHERE next_run_date <= ?"
    return int(query(database, sql, (clock.iso(),))[0][0])


def processes(backend: str, database: str, tmp_path: Path, points: FaultPoints) -> list[ForkedKeel]:
    env = {**os.environ, "KEEL_LOG_LEVEL": "warning", **points.env(HOLD)}
    env[SIDE_DB_ENV] = str(tmp_path / "side.db")
    common = ["--config", str(CONFIG), "--database", database]
    forks, logs = ForkServer(), tmp_path / "logs"
    if backend == "sqlite":
        argv = ["serve", *common, "--port", str(restartable_port())]
        return [ForkedKeel("serve", forks, argv, env, logs)]
    return [ForkedKeel(f"worker{i}", forks, ["worker", *common], env, logs) for i in range(2)]


def newly_held(points: FaultPoints, seen: set[str]) -> list[str]:
    return sorted(p.name for p in points.directory.glob("*.held") if p.name not in seen)


def live(procs: list[ForkedKeel], until: Callable[[], bool]) -> None:
    """Start the processes and return once `until()` holds (they stay up)."""
    for proc in procs:
        proc.spawn()
    deadline = time.monotonic() + LIFE_LIMIT
    while not until():
        if time.monotonic() > deadline:
            logs = "\n".join(p.logs() for p in procs)
            raise AssertionError(f"a life did not reach its end in {LIFE_LIMIT}s:\n{logs}")
        time.sleep(0.01)


async def test_every_due_slot_fires_exactly_once_across_kills(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    ids = await due_crons(database_url)
    points = FaultPoints(tmp_path / "faults")
    for index, point in ARMED.items():
        points.arm(point, ids[index])
    procs = processes(backend, database_url, tmp_path, points)
    tally, seen = Tally(), set[str]()
    try:
        while len(seen) < len(ARMED):
            live(procs, lambda: bool(newly_held(points, seen)))
            for proc in procs:
                proc.kill9()
            tally.lives += 1
            counts = runs_per_cron(database_url)
            for marker in newly_held(points, seen):
                point, cron_id, _ = marker.rsplit(".", 2)
                tally.kills[point] += 1
                assert counts[cron_id] == (0 if point == "cron-fire" else 1), marker
                points.release(point, cron_id)  # later lives pass it
                seen.add(marker)
            assert max(counts.values(), default=0) <= 1
        live(procs, lambda: still_due(database_url) == 0)
        tally.lives += 1
    finally:
        points.release_all()
        for proc in procs:
            proc.kill9()
        procs[0].forks.close()
    counts = runs_per_cron(database_url)
    print(f"\ncron chaos {backend}: {tally.lives} lives, kills {dict(tally.kills)}, "
          f"{sum(counts.values())} runs for {len(ids)} crons")  # fmt: skip
    assert tally.kills == {"cron-fire": 5, "cron-fired": 5}
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
