"""The sweeper (keel.retention.sweeps) on both backends, with an injected clock: `sweep(now=...)`
runs as if that much time had passed. Thread TTLs (delete, keep_latest), cascades, busy threads
and a sweep racing a new run, event-log retention, stateless runs, preview."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keel import clock
from keel.errors import NotFound
from keel.retention.sweeps import Sweeper, SweepReport
from keel.settings import CheckpointerSettings, RetentionSettings, ThreadTtl
from keel.storage import make_storage
from keel.threads import ThreadService
from tests.integration.test_worker import Rig, rig
from tests.support.gate import Gate

MINUTE = 60.0
LOG_RUNS = 45  # more than two of the sweeper's event-log batches
RETENTION = RetentionSettings(
    run_events_minutes=30, stateless_runs_minutes=5, thread_events_minutes=1
)


@contextlib.asynccontextmanager
async def swept(database_url: str, **ttl: Any) -> AsyncIterator[tuple[Rig, Sweeper]]:
    """A started worker pool and a sweeper over a fresh database with these TTL settings."""
    checkpointer = CheckpointerSettings(ttl=ThreadTtl(**ttl))
    async with rig(database_url, checkpointer=checkpointer, retention=RETENTION) as r:
        await r.pool.start()
        yield r, Sweeper(r.storage, r.settings)


async def count(r: Rig, table: str, thread_id: str) -> int:
    async with r.storage.read() as tx:
        return await tx.count(table, "thread_id=?", [thread_id])


async def writes_table(r: Rig) -> str:
    async with r.storage.read() as tx:
        return tx.writes_table


async def thread_row(r: Rig, thread_id: str) -> dict[str, Any] | None:
    async with r.storage.read() as tx:
        return await tx.get_thread(thread_id)


async def finished_run(r: Rig, thread_id: str, graph: str = "pipeline", **more: Any) -> str:
    run_id = await r.thread_run(graph, {"topic": "x"}, thread_id, **more)
    await r.wait_status(run_id, "success")
    return run_id


async def test_an_expired_thread_is_deleted_with_everything_it_owns(database_url: str) -> None:
    async with swept(database_url) as (r, sweeper):
        thread_id = str(uuid.uuid4())
        await ThreadService(r.storage).create(
            {"thread_id": thread_id, "ttl": {"ttl": 10, "strategy": "delete"}}
        )
        await finished_run(r, thread_id)
        await finished_run(r, thread_id)
        for table in ("runs", "run_events", "checkpoints", await writes_table(r)):
            assert await count(r, table, thread_id) > 0, table
        other = str(uuid.uuid4())  # no TTL: kept
        await finished_run(r, other)

        assert (await sweeper.sweep(clock.now() + 9 * MINUTE)).threads_deleted == 0
        report = await sweeper.sweep(clock.now() + 11 * MINUTE)
        assert report.threads_deleted == 1
        assert await thread_row(r, thread_id) is None
        for table in ("runs", "run_events", "checkpoints", await writes_table(r)):
            assert await count(r, table, thread_id) == 0, table
        assert await thread_row(r, other) is not None
        assert await count(r, "checkpoints", other) > 0
        # Idempotent: nothing left to do.
        assert (await sweeper.sweep(clock.now() + 11 * MINUTE)).threads_deleted == 0


async def test_default_ttl_is_stamped_on_new_threads_and_every_change_rearms_it(
    database_url: str,
) -> None:
    async with swept(database_url, default_ttl=10, strategy="keep_latest") as (r, _sweeper):
        made = await ThreadService(r.storage).create({})
        by_run = str(uuid.uuid4())
        await finished_run(r, by_run)  # created by the run (if_not_exists=create)
        own = await ThreadService(r.storage).create({"ttl": {"ttl": 60, "strategy": "delete"}})
        for thread_id, minutes, strategy in (
            (made["thread_id"], 10, "keep_latest"),
            (by_run, 10, "keep_latest"),
            (own["thread_id"], 60, "delete"),
        ):
            row = await thread_row(r, thread_id)
            assert row is not None
            assert row["ttl"] == {"ttl": minutes, "strategy": strategy}
            changed = clock.parse(row["updated_at"])
            assert row["expires_at"] == pytest.approx(changed + minutes * MINUTE, abs=0.01)
        before = await thread_row(r, made["thread_id"])
        assert before is not None
        await finished_run(r, made["thread_id"])
        after = await thread_row(r, made["thread_id"])
        assert after is not None and after["expires_at"] > before["expires_at"]
        await ThreadService(r.storage).patch(own["thread_id"], {"ttl": {"ttl": 5}})
        patched = await thread_row(r, own["thread_id"])
        assert patched is not None
        assert patched["expires_at"] == pytest.approx(
            clock.parse(patched["updated_at"]) + 5 * MINUTE, abs=0.01
        )


async def test_keep_latest_keeps_the_thread_and_its_latest_checkpoint(database_url: str) -> None:
    async with swept(database_url, default_ttl=10, strategy="keep_latest") as (r, sweeper):
        thread_id = str(uuid.uuid4())
        for _ in range(3):
            await finished_run(r, thread_id)
        state = await r.storage.checkpointer.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        )
        assert state is not None
        assert await count(r, "checkpoints", thread_id) > 3

        report = await sweeper.sweep(clock.now() + 11 * MINUTE)
        assert (report.threads_pruned, report.threads_deleted) == (1, 0)
        assert await count(r, "checkpoints", thread_id) == 1
        latest = await r.storage.checkpointer.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        )
        assert latest is not None
        assert latest.checkpoint["id"] == state.checkpoint["id"]
        assert latest.checkpoint["channel_values"] == state.checkpoint["channel_values"]
        row = await thread_row(r, thread_id)
        assert row is not None and row["expires_at"] is None  # disarmed until it changes
        assert (await sweeper.sweep(clock.now() + 100 * MINUTE)).threads_pruned == 0
        # The thread goes on: a new run continues from the kept state and re-arms the TTL.
        await finished_run(r, thread_id)
        row = await thread_row(r, thread_id)
        assert row is not None and row["expires_at"] is not None


async def test_a_busy_thread_is_never_swept(database_url: str, gate: Gate) -> None:
    async with swept(database_url, default_ttl=1) as (r, sweeper):
        thread_id = str(uuid.uuid4())
        run_id = await r.thread_run("slow", {"delay": 0.01}, thread_id, config=gate.config)
        await r.wait_status(run_id, "running")
        later = clock.now() + 10 * MINUTE
        assert (await sweeper.sweep(later)).threads_deleted == 0
        gate.open()
        await r.wait_status(run_id, "success")
        assert await thread_row(r, thread_id) is not None
        # Its end re-armed the TTL: due a minute after the run ended, then swept.
        assert (await sweeper.sweep(clock.now() + 2 * MINUTE)).threads_deleted == 1


async def test_a_run_created_after_the_sweep_listed_the_thread_keeps_it(
    database_url: str, gate: Gate
) -> None:
    """The sweep lists an expired idle thread; before it acts, a run starts on that thread.
    The sweep re-checks under the thread's lock and leaves it alone."""
    async with swept(database_url, default_ttl=1) as (r, sweeper):
        thread_id = str(uuid.uuid4())
        await finished_run(r, thread_id)
        later = clock.now() + 5 * MINUTE
        async with r.storage.read() as tx:
            listed = [row["thread_id"] for row in await tx.expired_threads(later, 100)]
        assert listed == [thread_id]
        run_id = await r.thread_run("slow", {"delay": 0.01}, thread_id, config=gate.config)
        report = SweepReport()
        await sweeper._expire(thread_id, later, report)  # the run is pending or running
        assert report.threads_deleted == 0
        gate.open()
        await r.wait_status(run_id, "success")
        assert await count(r, "runs", thread_id) == 2


async def test_a_run_racing_a_sweep_that_holds_the_thread_finds_it_gone(
    database_url: str,
) -> None:
    """The sweep holds the expired thread's lock; a run created on it meanwhile waits, then
    finds no thread (404): never a run left on a deleted thread."""
    async with swept(database_url, default_ttl=1) as (r, _sweeper):
        thread_id = str(uuid.uuid4())
        await finished_run(r, thread_id)
        later = clock.now() + 5 * MINUTE
        async with r.storage.tx() as tx:
            await tx.lock_thread(thread_id)
            assert await tx.due_thread(thread_id, later) is not None
            racer = asyncio.create_task(
                r.runs.create({"assistant_id": "pipeline", "input": {"topic": "z"}}, thread_id)
            )
            await blocked_on_the_thread(r, database_url, racer)
            await tx.delete_thread(thread_id)
        with pytest.raises(NotFound):
            await asyncio.wait_for(racer, 30)
        assert await thread_row(r, thread_id) is None
        assert await count(r, "runs", thread_id) == 0


async def blocked_on_the_thread(r: Rig, database_url: str, racer: asyncio.Task[Any]) -> None:
    """Wait (bounded) until the racing run creation waits for the thread: on PostgreSQL a
    session waiting for a row lock; on SQLite the one connection's lock (the sweep's
    transaction holds it)."""
    deadline = clock.now() + 30
    while clock.now() < deadline:
        assert not racer.done(), "the run was created while the sweep held its thread"
        if r.storage.dialect.name == "sqlite":
            await asyncio.sleep(0.05)  # the task is parked on the connection's lock
            return
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            cur = await c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type='Lock' "
                "AND datname=current_database()"
            )
            row = await cur.fetchone()
            if row and row[0] > 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the racing run never waited for the thread")


async def test_event_logs_are_swept_after_retention_and_the_run_remains(
    database_url: str,
) -> None:
    async with swept(database_url) as (r, sweeper):
        thread_id = str(uuid.uuid4())
        run_id = await finished_run(r, thread_id, stream_mode=["values", "custom"])
        assert await count(r, "run_events", thread_id) > 0
        assert (await sweeper.sweep(clock.now() + 29 * MINUTE)).run_logs_swept == 0
        report = await sweeper.sweep(clock.now() + 31 * MINUTE)
        assert report.run_logs_swept == 1
        assert await count(r, "run_events", thread_id) == 0
        run = await r.run_row(run_id)
        assert run["status"] == "success" and run["events_swept_at"] is not None
        assert await count(r, "checkpoints", thread_id) > 0  # state is not the log's
        assert (await sweeper.sweep(clock.now() + 31 * MINUTE)).run_logs_swept == 0


async def test_finished_stateless_runs_are_forgotten_sooner(database_url: str) -> None:
    async with swept(database_url) as (r, sweeper):
        run = await r.runs.create({"assistant_id": "pipeline", "input": {"topic": "s"}}, None)
        await r.wait_status(run["run_id"], "success")
        assert (await sweeper.sweep(clock.now() + 4 * MINUTE)).stateless_runs == 0
        assert (await sweeper.sweep(clock.now() + 6 * MINUTE)).stateless_runs == 1
        await r.wait_gone(run["run_id"])


async def test_preview_counts_what_the_sweep_then_removes(database_url: str) -> None:
    async with swept(database_url, default_ttl=10) as (r, sweeper):
        for _ in range(3):
            await finished_run(r, str(uuid.uuid4()))
        pruned = await ThreadService(r.storage).create(
            {"ttl": {"ttl": 1, "strategy": "keep_latest"}}
        )
        await finished_run(r, pruned["thread_id"])
        later = clock.now() + 40 * MINUTE
        preview = await sweeper.preview(later)
        assert preview.threads_deleted == 3 and preview.threads_pruned == 1
        # The deleted threads' logs go with them: only the pruned thread's run is a log sweep.
        assert preview.run_logs_swept == 1
        report = await sweeper.sweep(later)
        assert (report.threads_deleted, report.threads_pruned) == (3, 1)
        assert report.run_logs_swept == 1
        assert (await sweeper.preview(later)).total() == 0


async def test_sweep_limit_bounds_one_sweep(database_url: str) -> None:
    async with swept(database_url, default_ttl=1, sweep_limit=2) as (r, sweeper):
        for _ in range(5):
            await ThreadService(r.storage).create({})
        later = clock.now() + 2 * MINUTE
        assert [(await sweeper.sweep(later)).threads_deleted for _ in range(4)] == [2, 2, 1, 0]


async def test_keep_latest_on_a_thread_waiting_inside_a_subgraph_resumes(
    database_url: str,
) -> None:
    """A subgraph interrupted mid-way keeps its own latest checkpoint: after the prune, the
    resume finishes the subgraph where it stopped."""
    async with swept(database_url, default_ttl=1, strategy="keep_latest") as (r, sweeper):
        thread_id = str(uuid.uuid4())
        await finished_run(r, thread_id, "subgraph")
        run_id = await r.thread_run("subgraph", {"items": [], "pause": True}, thread_id)
        await r.wait_status(run_id, "success")
        row = await thread_row(r, thread_id)
        assert row is not None and row["status"] == "interrupted"
        async with r.storage.read() as tx:
            spaces = await tx.all(
                "SELECT checkpoint_ns, COUNT(*) AS n FROM checkpoints WHERE thread_id=? "
                "GROUP BY checkpoint_ns",
                [thread_id],
            )
        assert len(spaces) >= 3 and all(s["n"] > 1 for s in spaces)

        assert (await sweeper.sweep(clock.now() + 2 * MINUTE)).threads_pruned == 1
        async with r.storage.read() as tx:
            kept = await tx.all(
                "SELECT checkpoint_ns, COUNT(*) AS n FROM checkpoints WHERE thread_id=? "
                "GROUP BY checkpoint_ns",
                [thread_id],
            )
        assert sorted(s["checkpoint_ns"] for s in kept) == sorted(
            s["checkpoint_ns"] for s in spaces
        )
        assert all(s["n"] == 1 for s in kept)
        resume = await r.runs.create(
            {"assistant_id": "subgraph", "command": {"resume": "yes"}}, thread_id
        )
        await r.wait_status(resume["run_id"], "success")
        row = await thread_row(r, thread_id)
        assert row is not None and row["status"] == "idle"
        assert "sub_b:yes" in row["values"]["items"]


async def test_thread_stream_events_are_kept_briefly(database_url: str) -> None:
    async with swept(database_url) as (r, sweeper):
        thread = await ThreadService(r.storage).create({})
        async with r.storage.tx() as tx:
            await tx.insert_thread_event(thread["thread_id"], "1", "values", b"{}", clock.iso())
        assert (await sweeper.sweep(clock.now() + 0.5 * MINUTE)).thread_events == 0
        assert (await sweeper.sweep(clock.now() + 2 * MINUTE)).thread_events == 1


async def test_sqlite_gives_freed_pages_back_after_a_sweep(tmp_path: Path) -> None:
    """A new SQLite file uses incremental auto-vacuum; after a sweep deleted most of the data,
    `reclaim` shrinks the file down to a small slack of free pages kept for reuse."""
    database_url = f"sqlite:///{tmp_path / 'keel.db'}"
    async with swept(database_url, default_ttl=1) as (r, sweeper):
        blob = "x" * 20_000
        for i in range(300):
            await ThreadService(r.storage).create({"metadata": {"i": i, "blob": blob}})
        conn = r.storage.conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        full = conn.execute("PRAGMA page_count").fetchone()[0]
        assert (await sweeper.sweep(clock.now() + 2 * MINUTE)).threads_deleted == 300
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] > full // 2
        await r.storage.reclaim()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        assert pages < full // 2
        assert free <= max(256, pages // 10)


async def test_sweeps_racing_in_two_processes_remove_each_thing_once(database_url: str) -> None:
    """Two sweepers at once (PostgreSQL: a second storage, as another process has; SQLite: one
    process per file, so two sweepers share it): together they remove each expired thread and
    each old event log exactly once, without errors."""
    async with swept(database_url, default_ttl=1) as (r, sweeper):
        for _ in range(6):
            await finished_run(r, str(uuid.uuid4()))
        keep = ThreadService(r.storage)
        logs = str(uuid.uuid4())
        await keep.create({"thread_id": logs, "ttl": {"ttl": 600, "strategy": "delete"}})
        for _ in range(LOG_RUNS):
            await finished_run(r, logs)
        other_storage = r.storage
        if r.storage.dialect.name == "postgres":
            other_storage = make_storage(r.settings)
            await other_storage.open()
        try:
            other = Sweeper(other_storage, r.settings)
            later = clock.now() + 40 * MINUTE
            one, two = await asyncio.gather(sweeper.sweep(later), other.sweep(later))
        finally:
            if other_storage is not r.storage:
                await other_storage.close()
        assert one.threads_deleted + two.threads_deleted == 6
        assert one.run_logs_swept + two.run_logs_swept == LOG_RUNS
        assert await count(r, "run_events", logs) == 0
        assert (await sweeper.preview(later)).total() == 0
