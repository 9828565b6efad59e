"""A thread's protocol events: every run's stored events after `since`, then live ones.

The caller subscribes to the hub's thread feed before calling `thread_events` (so nothing
published during the replay is lost) and unsubscribes afterwards; events seen twice (in the
replay and in the feed) are sent once. When the feed's bounded queue overflowed (the client
read slower than the runs published), the walk sends what the queue held, replays the logs
after the last event it sent (the runs' logs and live channels hold everything), then follows
the feed again: nothing is lost and the subscriber's memory stays bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from keel.replay import run_events
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import TERMINAL, FeedQueue, StreamHub

from .events import (
    ATTEMPT_BITS,
    PROTOCOL_MODE,
    TERMINAL_LOCAL,
    split_seq,
    stored_to_wire,
    terminal_from_status,
)

MAX_RUNS = 100_000


def _run_local_after(local: int) -> int:
    """The run-log id after which to replay, from a thread seq's local part."""
    attempt, within = divmod(local, 1 << ATTEMPT_BITS)
    return (attempt << 32) + within


class ThreadEvents:
    """State of one subscriber's walk over a thread's runs."""

    def __init__(self, storage: Storage, hub: StreamHub, thread_id: str, since: int) -> None:
        self.storage = storage
        self.hub = hub
        self.thread_id = thread_id
        self.since = since
        self.runs: dict[str, tuple[int, bool]] = {}  # run_id -> (ordinal, protocol run)
        self.sent: set[tuple[str, int]] = set()
        self.ended: set[str] = set()
        self.high = since  # the highest seq sent

    async def _load_runs(self) -> list[Row]:
        async with self.storage.read() as tx:
            rows = await tx.list_runs(self.thread_id, None, MAX_RUNS, 0)
        rows.reverse()  # oldest first
        for run in rows:
            protocol = PROTOCOL_MODE in (run["kwargs"].get("stream_mode") or ())
            self.runs[run["run_id"]] = (int(run["thread_ordinal"]), protocol)
        return rows

    def _wire(self, run_id: str, local: int, name: str, data: bytes) -> list[Row]:
        if (run_id, local) in self.sent:
            return []
        self.sent.add((run_id, local))
        ordinal, protocol = self.runs[run_id]
        events = stored_to_wire(ordinal, local, name, data, protocol)
        return self._after_since(events)

    def _after_since(self, events: list[Row]) -> list[Row]:
        kept = [ev for ev in events if ev["seq"] > self.since]
        self.high = max([self.high, *(ev["seq"] for ev in kept)])
        return kept

    async def _ending(self, run_id: str) -> list[Row]:
        """The synthesized terminal lifecycle of an ended run, when its log lacks one."""
        if run_id in self.ended:
            return []
        async with self.storage.read() as tx:
            run = await tx.get_run(run_id)
        if run is None or run["status"] not in TERMINAL:
            return []
        self.ended.add(run_id)
        ordinal, protocol = self.runs[run_id]
        ev = terminal_from_status(ordinal, run["status"], protocol)
        return self._after_since([ev] if ev is not None else [])

    async def replay(self) -> AsyncIterator[Row]:
        since_ordinal, since_local = split_seq(self.since)
        for run in await self._load_runs():
            run_id = run["run_id"]
            ordinal, _ = self.runs[run_id]
            if ordinal < since_ordinal or (
                ordinal == since_ordinal and since_local == TERMINAL_LOCAL
            ):
                continue
            after = _run_local_after(since_local) if ordinal == since_ordinal else 0
            stream = run_events(self.storage, self.hub, run_id, self.thread_id, after, follow=False)
            async for ev in stream:
                for out in self._wire(run_id, ev.seq, ev.event, ev.data):
                    yield out
            for out in await self._ending(run_id):
                yield out

    async def live(self, queue: FeedQueue) -> AsyncIterator[Row]:
        while True:
            if queue.restart():  # events past the bound were dropped: read them from the logs
                self.since = self.high
                async for out in self.replay():
                    yield out
                continue
            event_id, name, data = await queue.get()
            run_id, _, local = event_id.rpartition(".")
            if not run_id:
                continue  # a thread-level event (state_update): not carried
            if run_id not in self.runs:
                await self._load_runs()
                if run_id not in self.runs:
                    continue
            if local == "done":
                for out in await self._ending(run_id):
                    yield out
                continue
            for out in self._wire(run_id, int(local), name, data):
                yield out


async def thread_events(
    storage: Storage, hub: StreamHub, thread_id: str, since: int | None, queue: FeedQueue
) -> AsyncIterator[Row]:
    """Every protocol event of the thread after `since` (None: from the start), then live."""
    walk = ThreadEvents(storage, hub, thread_id, since or 0)
    async for ev in walk.replay():
        yield ev
    async for ev in walk.live(queue):
        yield ev
