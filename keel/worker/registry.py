"""The worker registry: which worker pools run, where, and the leases their runs hold.

Each pool that executes runs (`settings.workers > 0`: an API process's in-process pool, a `keel
worker` process) writes its row in `workers` at start, refreshes its `seen_at` from its lease
heartbeat (keel.worker.leases; at most once per `beat_seconds`, one statement per process, none
per run) and deletes the row when it stops cleanly. A killed process's row stays: it is reported
not alive once `seen_at` is older than `ALIVE_BEATS` refresh periods (at least `ALIVE_FLOOR`
seconds, so a stalled event loop on a loaded machine is not taken for a dead process) and deleted
by the next registration after `PRUNE_AFTER`. With SQLite one process owns the database, so a
registration deletes every other row (as the pool's start re-queues every running run).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from typing import Any

from keel import __version__, clock
from keel.settings import Settings
from keel.storage.base import Storage
from keel.storage.tx import Row

log = logging.getLogger("keel.worker")
ALIVE_BEATS = 3
ALIVE_FLOOR = 10.0  # seconds
PRUNE_AFTER = 24 * 3600.0  # seconds unseen before a registration deletes a row


class WorkerRegistry:
    """One pool's row in `workers`."""

    def __init__(self, settings: Settings, storage: Storage, worker_id: str) -> None:
        self.storage = storage
        self.worker_id = worker_id
        self.slots = settings.workers
        self.beat_seconds = settings.lease_seconds  # seen_at is refreshed about this often
        self.kind = "server"  # `keel worker` sets "worker"
        self.started_at = 0.0
        self.written_at: float | None = None  # None: not registered

    def row(self, now: float) -> Row:
        return {
            "worker_id": self.worker_id,
            "kind": self.kind,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "slots": self.slots,
            "beat_seconds": self.beat_seconds,
            "started_at": self.started_at,
            "seen_at": now,
        }

    async def register(self) -> None:
        """Write this pool's row (unless it executes no runs); delete the rows of workers gone
        long ago (SQLite: of all others, whose process cannot be running)."""
        if self.slots <= 0:
            return
        now = self.started_at = clock.now()
        before = now - PRUNE_AFTER if self.storage.shared else float("inf")
        async with self.storage.tx() as tx:
            pruned = await tx.prune_workers(before, self.worker_id)
            await tx.put_worker(self.row(now))
        if pruned:
            log.info("worker registry: removed %d workers no longer running", pruned)
        self.written_at = now

    async def seen(self) -> None:
        """From the heartbeat: refresh `seen_at` when it is `beat_seconds` old."""
        now = clock.now()
        if self.written_at is None or now - self.written_at < self.beat_seconds:
            return
        async with self.storage.statements() as tx:
            await tx.put_worker(self.row(now))
        self.written_at = now

    async def unregister(self) -> None:
        """A clean stop: delete the row (a failure leaves it to be reported not alive)."""
        if self.written_at is None:
            return
        self.written_at = None
        try:
            async with self.storage.statements() as tx:
                await tx.delete_worker(self.worker_id)
        except Exception as exc:
            log.warning("worker registry: row of %s not deleted (%s)", self.worker_id, exc)


def alive(worker: Row, now: float) -> bool:
    """Whether the worker refreshed its row recently enough to be taken as running."""
    within = max(ALIVE_BEATS * float(worker["beat_seconds"]), ALIVE_FLOOR)
    return now - float(worker["seen_at"]) <= within


def lease_view(run: Row) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "assistant_id": run["assistant_id"],
        "attempt": run["attempt"],
        "lease_until": _iso(run["lease_until"]),
        "created_at": run["created_at"],
        "updated_at": run["updated_at"],
    }


def workers_view(workers: list[Row], leases: list[Row], now: float) -> list[dict[str, Any]]:
    """`GET /keel/workers`: each registered worker with the leases of `leases` it holds."""
    held: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in leases:
        held[run["worker_id"]].append(lease_view(run))
    return [
        {
            "worker_id": w["worker_id"],
            "kind": w["kind"],
            "host": w["host"],
            "pid": w["pid"],
            "version": w["version"],
            "slots": w["slots"],
            "started_at": _iso(w["started_at"]),
            "seen_at": _iso(w["seen_at"]),
            "seen_seconds_ago": round(max(now - float(w["seen_at"]), 0.0), 3),
            "alive": alive(w, now),
            "leases": held.get(w["worker_id"], []),
        }
        for w in workers
    ]


def _iso(ts: Any) -> str | None:
    return None if ts is None else clock.iso(float(ts))


def attempt_view(run: Row) -> dict[str, Any]:
    """`GET /keel/threads/{id}/runs`: a run's attempts and timings; its worker and lease while
    it runs (the reference's Run object has none of these)."""
    running = run["status"] == "running"
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "attempt": run["attempt"],
        "created_at": run["created_at"],
        "updated_at": run["updated_at"],
        "worker_id": run["worker_id"] if running else None,
        "lease_until": _iso(run["lease_until"]) if running else None,
    }
