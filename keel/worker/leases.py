"""Leases: a worker pool renews the lease of every run it executes, stops a run whose lease
it lost or could not renew in time, and re-queues runs whose lease ran out elsewhere."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from keel import clock
from keel.metrics.recorder import Recorder
from keel.runs import RUNS_CHANNEL
from keel.settings import Settings
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import TERMINAL
from keel.worker.registry import WorkerRegistry

log = logging.getLogger("keel.worker")
# A worker that could not renew a run's lease for this share of the lease stops executing it,
# before any other process may take it over (the lease runs out).
FENCE_SHARE = 0.75
LOST = "lost"  # cancel action: the lease is (or may be) someone else's now


class Pool(Protocol):
    """What the leases need of the worker pool they belong to (keel.worker.pool.WorkerPool)."""

    worker_id: str
    recorder: Recorder

    def executing(self) -> list[str]: ...

    def cancel_local(self, run_id: str, action: str) -> bool: ...

    def cancel_requested(self, run_id: str) -> bool: ...

    def notify(self) -> None: ...


class Leases:
    """The lease side of one worker pool (its heartbeat)."""

    def __init__(
        self, settings: Settings, storage: Storage, pool: Pool, registry: WorkerRegistry
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.pool = pool
        self.registry = registry  # its `seen_at` is refreshed from here
        self.secured: dict[str, float] = {}  # run id -> when its lease was last secured

    def stale(self, run_id: str) -> bool:
        """Whether the run's lease may have run out: it went unrenewed too long."""
        limit = clock.now() - self.settings.lease_seconds * FENCE_SHARE
        return self.secured.get(run_id, limit) < limit

    async def loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self.beat()
                if failing:
                    log.warning("heartbeat recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("heartbeat failed: %s", exc)
                failing = True
            finally:
                self.fence()

    async def beat(self) -> None:
        """Reap expired leases, renew this pool's, tell the worker registry it is alive (last:
        a failure there delays no renewal)."""
        await self.reap()
        await self.renew()
        await self.registry.seen()

    async def renew(self) -> None:
        """Renew the leases of the runs executing here; pick up cancellations stored by any
        process."""
        running = self.pool.executing()
        if not running:
            return
        now = clock.now()
        async with self.storage.statements() as tx:
            rows = await tx.renew_leases(
                self.pool.worker_id, running, now + self.settings.lease_seconds
            )
        for row in rows:
            self._renewed(row, now)
        for run_id in set(running) - {row["run_id"] for row in rows}:
            # Deleted under its worker (its thread was deleted without cancelling it): nobody
            # else can hold it, so stop it as cancelled; its end then cleans up after it.
            self.secured[run_id] = now
            self.pool.cancel_local(run_id, "interrupt")

    def _renewed(self, row: Row, now: float) -> None:
        run_id = row["run_id"]
        if row["status"] in TERMINAL:
            return  # this worker recorded its end just now; its task is ending
        if row["worker_id"] != self.pool.worker_id or row["status"] != "running":
            if not self.pool.cancel_requested(run_id):
                log.warning("run %s: lease lost to another worker; stopping here", run_id)
                self.pool.recorder.lease_lost()
            self.pool.cancel_local(run_id, LOST)
            return
        self.secured[run_id] = now  # a cancelled run still holds its lease until it ends
        if row["cancel_action"]:
            self.pool.cancel_local(run_id, row["cancel_action"])

    def fence(self) -> None:
        """Stop runs whose lease could not be renewed in time (e.g. the database is away), so
        that no two workers ever execute one run: the reaper elsewhere waits for the full lease."""
        for run_id in self.pool.executing():
            if self.stale(run_id):
                del self.secured[run_id]  # once; a renewal re-arms it
                log.warning("run %s: lease not renewed in time; handing it back", run_id)
                self.pool.recorder.lease_lost()
                self.pool.cancel_local(run_id, LOST)

    async def reap(self) -> None:
        """Re-queue runs whose lease expired (their executor died or lost track of them)."""
        async with self.storage.statements() as tx:
            reaped = await tx.requeue_expired(
                clock.now(), clock.iso(), all_running=False, keep=self.pool.executing()
            )
            if reaped:
                await tx.notify(RUNS_CHANNEL, self.pool.worker_id)
        for run in reaped:
            log.warning("re-queued run %s: its lease expired", run["run_id"])
        if reaped:
            self.pool.recorder.leases_expired(len(reaped))
            self.pool.notify()
