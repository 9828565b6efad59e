"""A run's event log on its way to the database: flushed in small batches while it runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from keel.runs import EVENTS_CHANNEL
from keel.storage.base import Storage
from keel.streams import RunChannel

log = logging.getLogger("keel.worker")


def event_rows(ch: RunChannel, events: list[Any]) -> list[tuple[str, int, str, str, bytes]]:
    return [(ch.run_id, e.seq, ch.thread_id, e.event, e.data) for e in events]


class Flusher:
    """Writes a run's new events to the database shortly after they are published."""

    def __init__(self, storage: Storage, ch: RunChannel, delay: float) -> None:
        self.storage = storage
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

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
