"""kill -9 around a sleep-time trigger's firing (Keel-only: its config and process deaths), on
both backends: a trigger armed by a run's end and not yet fired survives the crash and fires
once after the restart; a process killed right after the firing (its background run created and
claimed, not executed) leaves that run to be recovered, never a second one."""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from pathlib import Path

import psycopg
from langgraph_sdk import get_client

from keel import clock
from keel.background.firing import companion_thread_id
from tests.e2e.helpers import poll
from tests.support.faults import FaultPoints, query
from tests.support.reference import ROOT
from tests.support.server import KeelServer

SOURCES = 5  # source threads, each armed before the first kill
IDLE = 3600  # never due by itself during the test: the test makes it due while Keel is down
CONFIG = {
    "graphs": {"pipeline": f"{ROOT / 'examples' / 'agents' / 'pipeline.py'}:graph"},
    "background": {
        "triggers": {
            "idle": {"graph": "pipeline", "watch": ["pipeline"], "on_idle": IDLE, "input": "thread"}
        }
    },
}


def companion_runs(database: str, thread_id: str) -> list[tuple[str, str]]:
    sql = "SELECT run_id, status FROM runs WHERE thread_id=?"
    return [(r[0], r[1]) for r in query(database, sql, (companion_thread_id("idle", thread_id),))]


def make_due(database: str, due_at: str) -> None:
    """Move every armed firing to `due_at` (a committed write, unlike `query`)."""
    sql = "UPDATE trigger_states SET due_at=? WHERE due_at IS NOT NULL"
    if database.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database[len("sqlite:///") :])) as conn:
            conn.execute(sql, (due_at,))
            conn.commit()
        return
    with psycopg.connect(database) as pg:
        pg.execute(sql.replace("?", "%s").encode(), (due_at,))


def due_states(database: str) -> list[tuple[str, str | None]]:
    rows = query(database, "SELECT subject, due_at FROM trigger_states WHERE trigger_name='idle'")
    return sorted((r[0], r[1]) for r in rows)


async def test_a_trigger_armed_before_a_crash_fires_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "keel.json"
    config.write_text(json.dumps(CONFIG))
    points = FaultPoints(tmp_path / "faults")
    server = KeelServer(config, tmp_path / "srv", database=database_url, env=points.env())
    server.start()
    try:
        sdk = get_client(url=server.url, api_key=None)
        sources = [(await sdk.threads.create())["thread_id"] for _ in range(SOURCES)]
        for thread_id in sources:
            await sdk.runs.wait(thread_id, "pipeline", input={"topic": "t"})
        await sdk.aclose()
        server.kill9()  # armed (in each run's terminal transaction), not fired
        assert [s for s, due in due_states(database_url) if due] == sorted(sources)
        assert all(companion_runs(database_url, t) == [] for t in sources)
        # The idle time passes while Keel is down; its firing is held right after the claim.
        past = clock.iso(clock.now() - 1)
        make_due(database_url, past)
        for thread_id in sources:
            points.arm("after-claim", companion_thread_id("idle", thread_id))
        server.start()
        await points.held("after-claim", companion_thread_id("idle", sources[0]))
        server.kill9()  # fired (run created, state consumed), the run not executed
        points.release_all()
        server.start()
        for thread_id in sources:
            runs = await poll(functools.partial(_runs, database_url, thread_id), _all_done)
            assert len(runs) == 1, runs
        assert all(due is None for _, due in due_states(database_url))
    finally:
        points.release_all()
        server.stop()


async def _runs(database: str, thread_id: str) -> list[tuple[str, str]]:
    return companion_runs(database, thread_id)


def _all_done(runs: list[tuple[str, str]]) -> bool:
    return len(runs) >= 1 and all(status == "success" for _, status in runs)
