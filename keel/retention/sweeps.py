"""Bounded storage: the sweeper removes what has outlived its retention.

- threads whose TTL action is due (`checkpointer.ttl`, or the thread's own `ttl`): `delete`
  removes the thread with its runs, event logs, checkpoints and crons; `keep_latest` keeps the
  thread and its latest checkpoint per namespace;
- finished runs' event logs after `retention.run_events_minutes` (a later replay answers 410);
- finished stateless runs after `retention.stateless_runs_minutes`, thread-stream events after
  `retention.thread_events_minutes`, and expired long-term memory items;
- with a `sandbox` section, workspaces whose thread no longer exists (`keel.sandbox.lifecycle`:
  a deleted thread's workspace goes when its transaction commits; this catches the rest).

Every process sweeps (the scheduler runs `run_forever`); each step is a short transaction over a
small batch, re-checked under the thread's lock, so sweeps may race each other and running runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from keel import clock
from keel.settings import Settings
from keel.storage.base import Storage

log = logging.getLogger("keel.retention.sweeps")
BATCH = 100  # threads or stateless runs per transaction
LOG_BATCH = 20  # runs whose event logs go in one transaction (a chat run logs hundreds)
FIRST_SWEEP_SECONDS = 5.0  # after start-up: a restarted process catches up soon


@dataclasses.dataclass
class SweepReport:
    """What one sweep removed (or, from `preview`, would remove)."""

    threads_deleted: int = 0
    threads_pruned: int = 0
    run_logs_swept: int = 0
    stateless_runs: int = 0
    thread_events: int = 0
    store_items: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def total(self) -> int:
        return sum(self.as_dict().values())


class Sweeper:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.ttl = settings.checkpointer.ttl
        self.retention = settings.retention
        self.store_interval = settings.store.ttl.sweep_interval_minutes
        self.sandbox = settings.sandbox

    async def sweep(self, now: float | None = None) -> SweepReport:
        """Sweep every kind once, as of `now` (epoch seconds; default: the clock)."""
        now = clock.now() if now is None else now
        report = SweepReport()
        await self.sweep_threads(now, report)
        await self.sweep_logs(now, report)
        await self.sweep_store(now, report)
        await self.sweep_workspaces(now, report)
        return report

    async def sweep_threads(self, now: float, report: SweepReport) -> None:
        """Apply the TTL strategy of up to `sweep_limit` expired threads, one transaction each."""
        left = self.ttl.sweep_limit
        while left > 0:
            async with self.storage.read() as tx:
                rows = await tx.expired_threads(now, min(BATCH, left))
            for row in rows:
                await self._expire(row["thread_id"], now, report)
                await asyncio.sleep(0)  # SQLite runs inline: let requests in between
            left -= len(rows)
            if len(rows) < BATCH:
                return

    async def _expire(self, thread_id: str, now: float, report: SweepReport) -> None:
        async with self.storage.tx() as tx:
            await tx.lock_thread(thread_id)
            thread = await tx.due_thread(thread_id, now)
            if thread is None:
                return  # a run took it, or another process swept it first
            if (thread["ttl"] or {}).get("strategy", "delete") == "keep_latest":
                await tx.keep_latest_checkpoint(thread_id)
                await tx.disarm_thread(thread_id)
                report.threads_pruned += 1
            else:
                await tx.delete_thread(thread_id)
                report.threads_deleted += 1

    async def sweep_logs(self, now: float, report: SweepReport) -> None:
        """Event logs of runs past retention, finished stateless runs, thread-stream events."""
        before = clock.iso(now - self.retention.run_events_minutes * 60)
        left = self.retention.sweep_limit
        while left > 0:
            async with self.storage.tx() as tx:
                ids = await tx.runs_with_old_events(before, min(LOG_BATCH, left))
                if ids:
                    await tx.drop_run_events(ids, clock.iso(now))
            report.run_logs_swept += len(ids)
            await asyncio.sleep(0)
            left -= len(ids)
            if len(ids) < LOG_BATCH:
                break
        before = clock.iso(now - self.retention.stateless_runs_minutes * 60)
        while True:
            async with self.storage.tx() as tx:
                gone = await tx.sweep_temporary_runs(before, BATCH)
            report.stateless_runs += gone
            await asyncio.sleep(0)
            if gone < BATCH:
                break
        async with self.storage.tx() as tx:
            before = clock.iso(now - self.retention.thread_events_minutes * 60)
            report.thread_events += await tx.sweep_thread_events(before)

    async def sweep_store(self, now: float, report: SweepReport) -> None:
        report.store_items += await self.storage.store.sweep(now)

    async def sweep_workspaces(self, now: float, report: SweepReport) -> None:
        """Orphaned workspaces (their thread gone, unchanged for an hour; logged)."""
        if self.sandbox is None:
            return
        from keel.sandbox.lifecycle import sweep_orphans

        async def existing(ids: list[str]) -> set[str]:
            async with self.storage.read() as tx:
                return await tx.existing_threads(ids)

        await sweep_orphans(self.sandbox.root, existing, now)

    async def preview(self, now: float | None = None) -> SweepReport:
        """What `sweep(now)` would remove, without removing anything (limits not applied)."""
        now = clock.now() if now is None else now
        report = SweepReport()
        async with self.storage.read() as tx:
            for row in await tx.count_expired_threads(now):
                if (row["ttl"] or {}).get("strategy", "delete") == "keep_latest":
                    report.threads_pruned += int(row["n"])
                else:
                    report.threads_deleted += int(row["n"])
            events = clock.iso(now - self.retention.run_events_minutes * 60)
            report.run_logs_swept = await tx.count_runs_with_old_events(events, now)
            stateless = clock.iso(now - self.retention.stateless_runs_minutes * 60)
            report.stateless_runs = await tx.count_temporary_runs(stateless)
            thread_events = clock.iso(now - self.retention.thread_events_minutes * 60)
            report.thread_events = await tx.count_thread_events(thread_events)
            report.store_items = await tx.count_expired_store_items(now)
        return report

    async def run_forever(self) -> None:
        """Sweep each kind at its own interval, the first time soon after start-up."""
        jobs = [
            (self.ttl.sweep_interval_minutes * 60, self.sweep_threads),
            (self.retention.sweep_interval_minutes * 60, self.sweep_logs),
            (self.store_interval * 60, self.sweep_store),
            (self.retention.sweep_interval_minutes * 60, self.sweep_workspaces),
        ]
        due = [clock.now() + min(FIRST_SWEEP_SECONDS, every) for every, _ in jobs]
        while True:
            await asyncio.sleep(max(0.0, min(due) - clock.now()))
            now = clock.now()
            report = SweepReport()
            for i, (every, job) in enumerate(jobs):
                if due[i] <= now:
                    due[i] = now + every
                    try:
                        await job(now, report)
                    except Exception:
                        log.exception("sweep failed (%s); next try in %.0f s", job.__name__, every)
            if report.total():
                log.info("swept %s", {k: v for k, v in report.as_dict().items() if v})
                await self.storage.reclaim()
