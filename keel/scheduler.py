"""Fires due crons and runs the sweeper (`keel.retention.sweeps`: TTLs and retention).

A firing is one transaction: the cron's next run date moves from the due slot to the first slot
after now (a compare-and-set on the slot, which PostgreSQL's SKIP LOCKED lets concurrent
schedulers pass) and its run is created (`RunService.create_in`). Both happen or neither: a
process killed before the commit leaves the slot due for the next tick of any process, one killed
after it leaves nothing to redo. A run that cannot be created (its assistant gone, a busy thread
refusing it) skips the slot in a transaction of its own, logged. docs/crons.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from keel import clock
from keel.crons import next_run, run_body
from keel.errors import KeelError, Unavailable
from keel.retention.sweeps import Sweeper
from keel.run_config import RunAccess, stored_user
from keel.runs import RunService
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.tracing import TRACE_CONTEXT

log = logging.getLogger("keel.scheduler")
MAX_SLEEP = 30.0
BATCH = 100  # due crons read at once (a tick reads again while batches come back full)


class Scheduler:
    """One background task per process; any number of processes may share a database."""

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
        """Fire every cron due now, each once (however many of its slots passed: a cron that
        missed firings while no process ran fires once); returns how many this process fired."""
        now = clock.now()
        fired = 0
        while True:
            async with self.storage.read() as tx:
                due = await tx.due_crons(clock.iso(now), BATCH)
            results = [await self.fire(cron, now) for cron in due]
            fired += sum(results)
            if len(due) < BATCH or not any(results):
                return fired

    async def fire(self, cron: Row, now: float) -> bool:
        """Fire `cron`'s due slot (read at `now`) unless another process did; True if this
        one did. A run that cannot be created skips the slot (logged); a database failure is
        raised, the slot left due."""
        slot = cron["next_run_date"]
        following = next_run(cron["schedule"], cron["timezone"], now)
        try:
            fired = await self._fire_in_tx(cron, slot, following)
        except Unavailable:
            raise
        except Exception as exc:
            await self._skip(cron, slot, following, exc)
            return False
        if fired is None:
            return False
        self.runs.created(*fired)
        await self.runs.faults.point("cron-fired", cron["cron_id"], slot)
        return True

    async def _fire_in_tx(
        self, cron: Row, slot: str, following: str | None
    ) -> tuple[list[Row], list[Row]] | None:
        """The run created and the slot advanced in one transaction: the runs the creation
        cancelled (multitask) and the run, or None if the slot was not this process's to fire.
        A slot this process fires is a span, the root of the run's trace (keel.tracing)."""
        body = run_body(cron)
        # The cron's creator, when its payload carries them (keel.crons stores it).
        access = RunAccess.of(stored_user(body.get("config")))
        async with self.storage.tx() as tx:
            if cron["thread_id"] is not None:  # thread, then cron: the order a delete takes
                await tx.lock_thread(cron["thread_id"])
            if not await tx.claim_cron(cron["cron_id"], slot, following):
                return None
            with self.runs.tracing.fired("cron fire", _attributes(cron, slot)) as trace:
                if trace:
                    body[TRACE_CONTEXT] = trace
                thread_id = cron["thread_id"]
                run, cancelled = await self.runs.create_in(tx, body, thread_id, access=access)
            await self.runs.faults.point("cron-fire", cron["cron_id"], run["run_id"])
        log.info("cron %s fired for %s: run %s", cron["cron_id"], slot, run["run_id"])
        return cancelled, [run]

    async def _skip(self, cron: Row, slot: str, following: str | None, exc: Exception) -> None:
        """Advance past a slot whose run could not be created (never retried: no crash loop)."""
        async with self.storage.tx() as tx:
            skipped = await tx.claim_cron(cron["cron_id"], slot, following)
        if not skipped:
            return
        if isinstance(exc, KeelError):
            log.warning(
                "cron %s: slot %s skipped, its run was refused: %s",
                cron["cron_id"],
                slot,
                exc.detail,
            )
        else:
            log.error(
                "cron %s: slot %s skipped, creating its run failed",
                cron["cron_id"],
                slot,
                exc_info=exc,
            )


def _attributes(cron: Row, slot: str) -> dict[str, str]:
    """The attributes of a cron's firing span."""
    return {
        "keel.cron_id": cron["cron_id"],
        "keel.cron.slot": slot,
        "keel.assistant_id": cron["assistant_id"],
    }
