"""Firing crons (keel/scheduler.py) under a fake clock (tests/support/clock.py), no HTTP: each
due slot fires exactly once, however many schedulers try and wherever one stops; missed slots
fire once; DST nights; end_time; enabled; runs that cannot be created skip their slot."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from keel import clock
from keel.crons import CronService
from keel.faults import Faults
from keel.retention.sweeps import Sweeper
from keel.scheduler import Scheduler
from keel.storage import make_storage
from keel.storage.tx import Row
from keel.threads import ThreadService
from keel.tracing import TRACE_CONTEXT, Tracing
from keel.tracing.setup import trace_id_of
from tests.integration.test_worker import Rig, rig
from tests.support.clock import FakeClock
from tests.support.faults import HOLD, FaultPoints

HOUR = 3600.0


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fc = FakeClock(monkeypatch)
    fc.at = datetime(2027, 6, 1, 10, 0, 10, tzinfo=UTC).timestamp()
    return fc


def at(fc: FakeClock, *parts: int) -> None:
    """Set the clock to a UTC date: (year, month, day, hour[, minute[, second]])."""
    y, mo, d, h, mi, sec = (*parts, 0, 0, 0)[:6]
    fc.at = datetime(y, mo, d, h, mi, sec, tzinfo=UTC).timestamp()


def scheduler(r: Rig) -> Scheduler:
    return Scheduler(r.storage, r.runs, Sweeper(r.storage, r.settings))


async def new_cron(r: Rig, body: dict[str, Any], thread_id: str | None = None) -> Row:
    return await CronService(r.storage, r.runs).create(
        {"assistant_id": "pipeline", **body}, thread_id
    )


async def cron_row(r: Rig, cron_id: str) -> Row:
    async with r.storage.read() as tx:
        cron = await tx.get_cron(cron_id)
    assert cron is not None
    return cron


async def runs_of(r: Rig, cron_id: str) -> list[Row]:
    async with r.storage.read() as tx:
        rows = await tx.all(
            "SELECT run_id, metadata, temporary, kwargs FROM runs ORDER BY created_at"
        )
    return [row for row in rows if _meta(row).get("cron_id") == cron_id]


def _meta(row: Row) -> dict[str, Any]:
    meta = row["metadata"]
    return meta if isinstance(meta, dict) else dict(json.loads(meta))


async def test_a_due_cron_fires_once_and_moves_to_its_next_slot(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        cron = await new_cron(r, {"schedule": "0 * * * *", "metadata": {"m": 1}})
        assert cron["next_run_date"].startswith("2027-06-01T11:00:00")
        s = scheduler(r)
        assert await s.tick() == 0
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        assert await s.tick() == 1
        assert await s.tick() == 0
        assert (await cron_row(r, cron["cron_id"]))["next_run_date"].startswith("2027-06-01T12:00")
        [run] = await runs_of(r, cron["cron_id"])
        # As the reference: the cron's metadata on its run (and Keel's cron_id).
        assert _meta(run) == {**_meta(run), "m": 1, "cron_id": cron["cron_id"]}
        assert run["temporary"]  # stateless, on_run_completed "delete"


async def test_slots_missed_while_nothing_ran_fire_once(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        cron = await new_cron(r, {"schedule": "*/10 * * * *", "on_run_completed": "keep"})
        at(fake_clock, 2027, 6, 1, 15, 25)  # 5 hours on: 30 slots passed
        assert await scheduler(r).tick() == 1
        assert await scheduler(r).tick() == 0
        after = await cron_row(r, cron["cron_id"])
        assert after["next_run_date"].startswith("2027-06-01T15:30")  # first slot after now
        [run] = await runs_of(r, cron["cron_id"])
        assert not run["temporary"]  # on_run_completed "keep"
        kwargs = run["kwargs"] if isinstance(run["kwargs"], dict) else json.loads(run["kwargs"])
        assert kwargs["temporary"] is False  # as the reference shows a kept stateless run


@contextlib.asynccontextmanager
async def other_process(r: Rig, backend: str) -> AsyncIterator[Scheduler]:
    """A second scheduler as another process has it: its own pool on PostgreSQL; on SQLite
    the same storage (one process per file), so their transactions take turns."""
    if backend == "sqlite":
        yield scheduler(r)
        return
    storage = make_storage(r.settings)
    await storage.open()
    try:
        yield Scheduler(storage, r.runs, Sweeper(storage, r.settings))
    finally:
        await storage.close()


async def test_a_slot_read_by_two_schedulers_fires_once(
    database_url: str, backend: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r, other_process(r, backend) as other:
        cron = await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        async with other.storage.read() as tx:
            [stale] = await tx.due_crons(clock.iso(), 10)
        assert await scheduler(r).tick() == 1
        assert not await other.fire(stale, clock.now())  # the slot moved on meanwhile
        assert len(await runs_of(r, cron["cron_id"])) == 1


async def test_a_slot_being_fired_is_not_fired_by_another_scheduler(
    database_url: str, backend: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    """One scheduler is held inside its firing transaction (run created, slot advanced, not
    committed); another tries the same slot (PostgreSQL: skips the locked row; SQLite: waits
    its turn), then the first commits: one run."""
    points = FaultPoints(tmp_path / "faults")
    async with rig(database_url) as r, other_process(r, backend) as other:
        r.runs.faults = Faults(points.directory, hold=HOLD)
        cron = await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        points.arm("cron-fire", cron["cron_id"])
        first = asyncio.create_task(scheduler(r).tick())
        await points.held("cron-fire", cron["cron_id"])
        second = asyncio.create_task(other.tick())
        if backend == "postgres":
            assert await second == 0  # passed the locked row without waiting for it
        points.release_all()
        assert (await first, await second) == (1, 0)
        assert len(await runs_of(r, cron["cron_id"])) == 1


async def test_a_firing_that_dies_before_its_commit_is_fired_by_another(
    database_url: str, backend: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    points = FaultPoints(tmp_path / "faults")
    async with rig(database_url) as r, other_process(r, backend) as other:
        r.runs.faults = Faults(points.directory, hold=HOLD)
        cron = await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        points.arm("cron-fire", cron["cron_id"])
        first = asyncio.create_task(scheduler(r).tick())
        await points.held("cron-fire", cron["cron_id"])
        first.cancel()  # its transaction rolls back: as a kill, nothing was committed
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert await runs_of(r, cron["cron_id"]) == []
        points.release_all()  # the other scheduler (the same fault points) passes the point
        assert await other.tick() == 1
        assert len(await runs_of(r, cron["cron_id"])) == 1


async def fire_through(r: Rig, fc: FakeClock, start: float, hours: float) -> list[str]:
    """Tick every 5 minutes from `start` for `hours`; the UTC times (HH:MM) ticks fired at."""
    s, fired = scheduler(r), []
    for step in range(int(hours * 12) + 1):
        fc.at = start + step * 300 + 1
        if await s.tick():
            fired.append(datetime.fromtimestamp(fc.at, UTC).strftime("%H:%M"))
    return fired


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # Spring: 02:30 does not exist; fires at 03:00 EDT (07:00 UTC), once.
        ((2027, 3, 14, 4), ["07:00"]),
        # Autumn: 01:30 happens twice (05:30 and 06:30 UTC); fires at the first, once.
        ((2027, 11, 7, 3), ["05:30"]),
    ],
)
async def test_a_dst_night_fires_a_fixed_time_once(
    database_url: str, fake_clock: FakeClock, day: tuple[int, int, int, int], expected: list[str]
) -> None:
    async with rig(database_url) as r:
        at(fake_clock, *day)
        expr = "30 2 * * *" if day[1] == 3 else "30 1 * * *"
        await new_cron(r, {"schedule": expr, "timezone": "America/New_York"})
        assert await fire_through(r, fake_clock, fake_clock.at, 5) == expected


async def test_a_cron_stops_firing_after_its_end_time(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        end = "2027-06-01T12:30:00+00:00"
        cron = await new_cron(r, {"schedule": "0 * * * *", "end_time": end})
        fired = await fire_through(r, fake_clock, fake_clock.at, 4)
        assert fired == ["11:00", "12:00"]
        row = await cron_row(r, cron["cron_id"])
        assert row["enabled"]  # as the reference: left enabled, it just no longer fires


async def test_a_disabled_cron_never_fires_and_skips_its_slots_when_enabled_again(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        svc = CronService(r.storage, r.runs)
        cron = await new_cron(r, {"schedule": "0 * * * *", "enabled": False})
        assert await fire_through(r, fake_clock, fake_clock.at, 3) == []
        patched = await svc.patch(cron["cron_id"], {"enabled": True})
        assert patched["next_run_date"].startswith("2027-06-01T14:00")  # not the 11:00 slot
        assert await scheduler(r).tick() == 0
        assert await runs_of(r, cron["cron_id"]) == []


async def test_a_run_that_cannot_be_created_skips_its_slot(
    database_url: str, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread cron with multitask_strategy reject on a busy thread (409, as the reference:
    logged, the slot passes) and a cron whose assistant is no longer served (404)."""
    async with rig(database_url) as r:
        thread = await ThreadService(r.storage).create({})
        tid = thread["thread_id"]
        await r.thread_run("slow", {"delay": 5}, tid)  # pending: the thread is busy
        busy = await new_cron(r, {"schedule": "0 * * * *", "multitask_strategy": "reject"}, tid)
        gone = await new_cron(r, {"schedule": "0 * * * *"})
        async with r.storage.tx() as tx:
            await tx.run(
                "UPDATE crons SET assistant_id=?, payload=? WHERE cron_id=?",
                ["00000000-0000-0000-0000-000000000000", '{"assistant_id": '
                 '"00000000-0000-0000-0000-000000000000"}', gone["cron_id"]],
            )  # fmt: skip
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        assert await scheduler(r).tick() == 0
        assert await scheduler(r).tick() == 0  # skipped, not retried
        for cron in (busy, gone):
            assert (await cron_row(r, cron["cron_id"]))["next_run_date"].startswith(
                "2027-06-01T12:00"
            )
            assert await runs_of(r, cron["cron_id"]) == []
        assert "skipped, its run was refused" in caplog.text


def traced(r: Rig) -> InMemorySpanExporter:
    """The rig's runs made with a tracer whose spans the test reads (the SDK's own in-memory
    exporter; Keel's OTLP export is tests/e2e/test_tracing.py's)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(spans)
    provider.add_span_processor(processor)
    r.runs.tracing = Tracing(provider, processor)
    return spans


async def test_a_cron_firing_is_the_root_of_its_runs_trace(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        spans = traced(r)
        cron = await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        assert await scheduler(r).tick() == 1
        [run] = await runs_of(r, cron["cron_id"])
        [fired] = spans.get_finished_spans()
        assert fired.name == "cron fire" and fired.parent is None  # a trace of its own
        assert fired.attributes is not None
        assert fired.attributes["keel.cron_id"] == cron["cron_id"]
        assert str(fired.attributes["keel.cron.slot"]).startswith("2027-06-01T11:00")
        # The run carries the firing's context: its run span (any process) continues the trace.
        kwargs = run["kwargs"] if isinstance(run["kwargs"], dict) else json.loads(run["kwargs"])
        context = fired.get_span_context()
        assert context is not None
        assert trace_id_of(kwargs[TRACE_CONTEXT]) == format_trace_id(context.trace_id)
        assert format_span_id(context.span_id) in kwargs[TRACE_CONTEXT]["traceparent"]


async def test_a_firing_that_cannot_create_its_run_is_an_error_span(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        spans = traced(r)
        thread = await ThreadService(r.storage).create({})
        await r.thread_run("slow", {"delay": 5}, thread["thread_id"])  # busy: reject refuses
        busy = await new_cron(
            r, {"schedule": "0 * * * *", "multitask_strategy": "reject"}, thread["thread_id"]
        )
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        assert await scheduler(r).tick() == 0
        assert await runs_of(r, busy["cron_id"]) == []
        [fired] = spans.get_finished_spans()
        assert fired.status.status_code == StatusCode.ERROR
        assert [event.name for event in fired.events] == ["exception"]


async def test_without_traces_a_cron_run_carries_no_trace_context(
    database_url: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r:
        cron = await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        assert await scheduler(r).tick() == 1
        [run] = await runs_of(r, cron["cron_id"])
        kwargs = run["kwargs"] if isinstance(run["kwargs"], dict) else json.loads(run["kwargs"])
        assert TRACE_CONTEXT not in kwargs


async def test_a_slot_another_scheduler_fired_makes_no_span(
    database_url: str, backend: str, fake_clock: FakeClock
) -> None:
    async with rig(database_url) as r, other_process(r, backend) as other:
        spans = traced(r)
        await new_cron(r, {"schedule": "0 * * * *"})
        at(fake_clock, 2027, 6, 1, 11, 0, 1)
        async with other.storage.read() as tx:
            [stale] = await tx.due_crons(clock.iso(), 10)
        assert await scheduler(r).tick() == 1
        assert not await other.fire(stale, clock.now())
        assert [s.name for s in spans.get_finished_spans()] == ["cron fire"]  # one: the winner's
