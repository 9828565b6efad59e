"""Fires due crons (each due cron becomes a run, and its next run date moves on) and runs the
sweeper (`keel.retention.sweeps`: TTLs and retention)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from keel import clock
from keel.crons import next_run
from keel.errors import KeelError
from keel.retention.sweeps import Sweeper
from keel.run_config import RunAccess, stored_user
from keel.runs import RunService
from keel.storage.base import Storage
from keel.storage.tx import Row

log = logging.getLogger("keel.scheduler")
MAX_SLEEP = 30.0


class Scheduler:
    """One background task per process; a compare-and-set on `next_run_date` claims a firing."""

    def __init__(self, storage: Storage, runs: RunService, sweeper: Sweeper) -> None:
        self.storage = storage
        self.runs = runs
        self.sweeper = sweeper
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(), name="keel-scheduler"),
            asyncio.create_task(self.sweeper.run_forever(), name="keel-sweeper"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
                delay = await self._delay()
            except Exception:
                log.exception("scheduler tick failed")
                delay = MAX_SLEEP
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _delay(self) -> float:
        async with self.storage.read() as tx:
            at = await tx.next_cron_at()
        if at is None:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, clock.parse(at) - clock.now()))

    async def tick(self) -> int:
        """Fire every due cron once; returns how many fired."""
        now = clock.iso()
        claimed: list[Row] = []
        async with self.storage.tx() as tx:
            for cron in await tx.due_crons(now):
                following = next_run(cron["schedule"], cron["timezone"])
                if await tx.advance_cron(cron["cron_id"], cron["next_run_date"], following):
                    claimed.append(cron)
        for cron in claimed:
            await self._fire(cron)
        return len(claimed)

    async def _fire(self, cron: Row) -> None:
        body = dict(cron["payload"])
        body["metadata"] = {**(body.get("metadata") or {}), "cron_id": cron["cron_id"]}
        if cron["thread_id"] is None:
            body["on_completion"] = cron["on_run_completed"] or "delete"
        try:
            # The cron's creator, when its payload carries them (keel.crons stores it).
            access = RunAccess.of(stored_user(body.get("config")))
            await self.runs.create(body, cron["thread_id"], access=access)
        except KeelError as exc:
            log.warning("cron %s: creating its run failed: %s", cron["cron_id"], exc.detail)
