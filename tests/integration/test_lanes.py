"""Priority lanes and schedule triggers in one process (no HTTP), on both backends: the claim
order and the reserved slots are shown by construction, with background runs held at a fault
point; a schedule's firing time is made due by writing its state row."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from keel import clock
from keel.background.firing import NAMESPACE_SUBJECT, SCHEDULE_SUBJECT, companion_thread_id
from keel.background.triggers import Triggers
from keel.endings import Endings
from keel.faults import Faults
from keel.runtime import Runtime
from keel.settings import load_settings
from keel.settings.sleep_time import BackgroundSettings, Selection, TriggerSpec
from keel.storage.tx import Row
from tests.conftest import GRAPHS_CONFIG
from tests.e2e.helpers import poll
from tests.support.faults import HOLD, FaultPoints

BACKGROUND = {"keel_lane": "background"}


@contextlib.asynccontextmanager
async def runtime(
    database_url: str, background: BackgroundSettings, faults: Faults | None = None, **more: Any
) -> AsyncIterator[Runtime]:
    settings = load_settings(GRAPHS_CONFIG, database=database_url, **more)
    settings.background = background
    rt = Runtime(settings)
    if faults is not None:
        rt.workers.faults = faults
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def create(rt: Runtime, thread_id: str, metadata: Row | None = None) -> str:
    body = {"assistant_id": "pipeline", "input": {"topic": "t"}, "if_not_exists": "create"}
    run = await rt.runs.create({**body, "metadata": metadata or {}}, thread_id)
    return str(run["run_id"])


async def status(rt: Runtime, run_id: str) -> str:
    async with rt.storage.read() as tx:
        run = await tx.get_run(run_id)
    assert run is not None
    return str(run["status"])


async def wait_status(rt: Runtime, run_id: str, want: str) -> None:
    await poll(lambda: status(rt, run_id), lambda s: s == want)


async def test_interactive_runs_are_claimed_before_older_background_ones(
    database_url: str, tmp_path: Path
) -> None:
    """One worker: a background run holds it; another background run and then an interactive
    one wait. When the slot frees, the interactive run (the younger) is claimed first."""
    points = FaultPoints(tmp_path / "faults")
    first, second, interactive = (str(uuid.uuid4()) for _ in range(3))
    points.arm("before-graph", first)
    points.arm("before-graph", interactive)
    faults = Faults(points.directory, hold=HOLD)
    async with runtime(database_url, BackgroundSettings(), faults, workers=1) as rt:
        try:
            held = await create(rt, first, BACKGROUND)
            await points.held("before-graph", first)
            queued = await create(rt, second, BACKGROUND)
            mine = await create(rt, interactive)
            points.release("before-graph", first)
            assert await points.held("before-graph", interactive) == mine
            assert await status(rt, queued) == "pending"
            await wait_status(rt, held, "success")
        finally:
            points.release_all()
        await wait_status(rt, mine, "success")
        await wait_status(rt, queued, "success")


async def test_reserved_slots_keep_a_background_backlog_from_delaying_interactive_runs(
    database_url: str, tmp_path: Path
) -> None:
    """Two workers, half reserved: one background run at a time, however many wait; an
    interactive run created behind the backlog is claimed and done while it is held."""
    points = FaultPoints(tmp_path / "faults")
    threads = [str(uuid.uuid4()) for _ in range(3)]
    for thread in threads:
        points.arm("before-graph", thread)
    faults = Faults(points.directory, hold=HOLD)
    share = BackgroundSettings(reserved_interactive_share=0.5)
    async with runtime(database_url, share, faults, workers=2) as rt:
        try:
            backlog = [await create(rt, t, BACKGROUND) for t in threads]
            running = await points.held("before-graph", threads[0])
            mine = await create(rt, str(uuid.uuid4()))
            await wait_status(rt, mine, "success")
            assert [await status(rt, r) for r in backlog] == ["running", "pending", "pending"]
            assert running == backlog[0] and rt.workers.lanes.background == {running}
        finally:
            points.release_all()
        for run_id in backlog:
            await wait_status(rt, run_id, "success")


async def test_schedule_fires_once_over_the_selected_threads(database_url: str) -> None:
    """A schedule trigger over threads selected by metadata: its (missed) firing time is due at
    start-up; it fires once, one background run per selected thread, and moves on."""
    tag = uuid.uuid4().hex
    spec = TriggerSpec(
        name="digest",
        kind="schedule",
        graph="pipeline",
        schedule="0 3 * * *",
        select=Selection(metadata={"team": tag}),
        input="thread",
    )
    background = BackgroundSettings(triggers=(spec,))
    async with runtime(database_url, background) as rt:
        chosen = []
        for meta in ({"team": tag}, {"team": tag}, {"team": "other"}):
            async with rt.storage.tx() as tx:
                thread_id = str(uuid.uuid4())
                await tx.insert_thread(_thread(thread_id, meta))
            chosen.append(thread_id)
        await _make_due(rt, "digest")
        for thread_id in chosen[:2]:
            companion = companion_thread_id("digest", thread_id)
            runs = await poll(functools.partial(_runs, rt, companion), _one)
            await wait_status(rt, runs[0]["run_id"], "success")
            assert runs[0]["kwargs"]["input"]["source_thread_id"] == thread_id
        assert await _runs(rt, companion_thread_id("digest", chosen[2])) == []
        async with rt.storage.read() as tx:
            state = await tx.trigger_state("digest", SCHEDULE_SUBJECT)
        assert state is not None and clock.parse(state["due_at"]) > clock.now()


async def _make_due(rt: Runtime, name: str) -> None:
    async with rt.storage.tx() as tx:
        await tx.arm_trigger(name, SCHEDULE_SUBJECT, clock.iso(clock.now() - 60), None)
    assert isinstance(rt.triggers, Triggers)
    rt.triggers._hinted(clock.now())


async def _runs(rt: Runtime, thread_id: str) -> list[Row]:
    async with rt.storage.read() as tx:
        return await tx.list_runs(thread_id, None, 10, 0)


def _thread(thread_id: str, metadata: Row) -> Row:
    now = clock.iso()
    return {
        "thread_id": thread_id,
        "created_at": now,
        "updated_at": now,
        "metadata": metadata,
        "config": {},
        "status": "idle",
        "values": None,
        "interrupts": {},
        "ttl": None,
        "org": None,
    }


def test_background_slots_leave_one_for_each_lane() -> None:
    share = BackgroundSettings(reserved_interactive_share=0.25)
    assert [share.background_slots(w) for w in (0, 1, 2, 4, 10)] == [0, 1, 1, 3, 7]
    everything = dataclasses.replace(share, reserved_interactive_share=1.0)
    assert everything.background_slots(4) == 1
    assert Endings().hooks == []


def _one(runs: list[Row]) -> bool:
    return len(runs) == 1


async def test_schedule_over_store_namespaces_gets_each_namespace(database_url: str) -> None:
    tag = uuid.uuid4().hex
    spec = TriggerSpec(
        name="tidy",
        kind="schedule",
        graph="pipeline",
        schedule="0 3 * * *",
        select=Selection(prefix=(tag,)),
    )
    async with runtime(database_url, BackgroundSettings(triggers=(spec,))) as rt:
        for user in ("ann", "bob"):
            await rt.storage.store.aput((tag, user), "k", {"text": user})
        await rt.storage.store.aput(("other", "cat"), "k", {"text": "no"})
        await _make_due(rt, "tidy")
        for user in ("ann", "bob"):
            companion = companion_thread_id("tidy", f"{NAMESPACE_SUBJECT}{tag}.{user}")
            runs = await poll(functools.partial(_runs, rt, companion), _one)
            assert runs[0]["kwargs"]["input"]["namespace"] == [tag, user]
            assert runs[0]["metadata"]["keel_trigger"] == "tidy"
            await wait_status(rt, runs[0]["run_id"], "success")
