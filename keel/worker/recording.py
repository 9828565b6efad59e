"""A run's writes on their way to the database: its event log, flushed in small batches while
it runs, and its terminal row with its thread's outcome, written only while its worker still
holds it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langgraph.types import StateSnapshot

from keel.execution import thread_interrupts
from keel.metrics.recorder import Recorder
from keel.runs import EVENTS_CHANNEL
from keel.serde import jsonable
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx
from keel.streams import RunChannel

log = logging.getLogger("keel.worker")


def event_rows(ch: RunChannel, events: list[Any]) -> list[tuple[str, int, str, str, bytes]]:
    return [(ch.run_id, e.seq, ch.thread_id, e.event, e.data) for e in events]


class Flusher:
    """Writes a run's new events to the database shortly after they are published."""

    def __init__(
        self, storage: Storage, ch: RunChannel, delay: float, recorder: Recorder | None = None
    ) -> None:
        self.storage = storage
        self.recorder = recorder or Recorder()
        self.ch = ch
        self.delay = delay
        self._task: asyncio.Task[None] | None = None

    def schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.delay)
        try:
            await self.flush()
        except Exception as exc:  # kept in memory: the next flush or the finish writes them
            log.warning("run %s: saving events failed: %s", self.ch.run_id, exc)

    async def flush(self) -> None:
        pending = self.ch.unflushed()
        if not pending:
            return
        upto = self.ch.flushed + len(pending)
        ch = self.ch
        async with self.storage.tx() as tx:
            await tx.append_events(event_rows(ch, pending))
            await tx.notify(EVENTS_CHANNEL, f"{ch.run_id} {ch.thread_id} {pending[0].seq}")
        self.ch.flushed = max(self.ch.flushed, upto)
        self.recorder.events_written(len(pending))

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def end_run(
    tx: Tx, worker_id: str, run: Row, ch: RunChannel, outcome: tuple[str, Any, str, str | None]
) -> bool:
    """Write the run's terminal status (`outcome`: status, result, now, cancel action) and its
    last events, or, rolled back, delete it, if `worker_id` still holds it. A run deleted under
    its worker (its thread was deleted) leaves nothing behind: no events, no checkpoints written
    after the deletion."""
    status, result, now, cancel = outcome
    run_id = run["run_id"]
    if cancel == "rollback":
        ended = await tx.delete_owned_run(run_id, worker_id)
    else:
        ended = await tx.finish_run(run_id, status, result, now, worker_id)
        if ended:
            await tx.append_events(event_rows(ch, ch.unflushed()))
    if not ended and await tx.get_run(run_id) is None:
        await tx.delete_run(run_id)
        await tx.delete_run_checkpoints(run["thread_id"], run_id)
    return ended


async def roll_back(storage: Storage, worker_id: str, run: Row) -> None:
    """Delete the checkpoints of a run being rolled back while `worker_id` holds it; the run
    itself goes in its terminal transaction (a crash in between repeats the rollback)."""
    async with storage.tx() as tx:
        current = await tx.get_run(run["run_id"])
        if current is not None and current["worker_id"] == worker_id:
            await tx.delete_run_checkpoints(run["thread_id"], run["run_id"])


async def settle_thread(
    tx: Tx, thread_id: str, status: str, state: StateSnapshot | None, error: Any, now: str
) -> bool:
    """Record a finished run's outcome on its thread: status, values, interrupts, error.
    Returns whether more runs wait on the thread."""
    busy = bool(await tx.active_runs(thread_id))
    values = jsonable(state.values) if state is not None else None
    interrupts = thread_interrupts(state) if state is not None else {}
    if busy:
        thread_status = "busy"
    elif status in ("error", "timeout"):
        thread_status = "error"
    else:
        thread_status = "interrupted" if state is not None and state.next else "idle"
    await tx.set_thread_state(
        thread_id, status=thread_status, values=values, interrupts=interrupts, error=error, now=now
    )
    return busy
