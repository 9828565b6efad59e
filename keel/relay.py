"""The relay: what processes sharing one PostgreSQL database tell each other.

Every Keel process (API server or worker) keeps one LISTEN connection. Through it:
- `keel_runs`: a run became claimable; local workers try to claim at once.
- `keel_cancel`: "<run_id> <action>"; the process executing that run cancels it at once.
- `keel_events`: "<run_id> <thread_id> <first seq>" after a worker logged new events, or
  "<run_id> <thread_id> done" when the run ended; channels of this process that follow the run
  (a client streaming or waiting here) read the new events from `run_events`, in order.
- `keel_thread`: "<thread_id> <event_id>": a thread-level event (`state_update`) was stored in
  `thread_events`; thread streams here read and forward it.

Notifications only make things fast: a lost one (the connection dropped, the database restarted)
is covered by the workers' periodic claim, the lease heartbeat (cancellation) and a periodic
catch-up of every followed channel, each at most `poll_seconds` late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from keel.runs import CANCEL_CHANNEL, EVENTS_CHANNEL, RUNS_CHANNEL, THREAD_CHANNEL
from keel.storage.base import Storage
from keel.streams import TERMINAL, RunChannel, StreamHub
from keel.worker import WorkerPool

log = logging.getLogger("keel.relay")
RECONNECTED = "keel_reconnect"
POLL_BATCH = 500


class Relay:
    def __init__(
        self, storage: Storage, hub: StreamHub, workers: WorkerPool, poll_seconds: float
    ) -> None:
        self.storage = storage
        self.hub = hub
        self.workers = workers
        self.poll_seconds = poll_seconds
        self._followed: dict[str, RunChannel] = {}
        self._busy: set[str] = set()  # run ids being caught up right now
        self._again: set[str] = set()  # ... that got news meanwhile
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.storage.shared:
            return
        self.hub.watcher = self.follow
        channels = [RUNS_CHANNEL, CANCEL_CHANNEL, EVENTS_CHANNEL, THREAD_CHANNEL]
        self._tasks = [
            asyncio.create_task(self.storage.listen(channels, self._on_note), name="keel-listen"),
            asyncio.create_task(self._poll_loop(), name="keel-relay-poll"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.hub.watcher = None

    def follow(self, ch: RunChannel) -> None:
        """Fill `ch` from the event log until its run ends (unless this process runs it)."""
        self._followed[ch.run_id] = ch
        self._catch_up_soon(ch.run_id)

    async def _on_note(self, channel: str, payload: str) -> None:
        if channel == RUNS_CHANNEL:
            if payload != self.workers.worker_id:  # our own were acted on when sent
                self.workers.notify()
        elif channel == CANCEL_CHANNEL:
            run_id, _, action = payload.partition(" ")
            self.workers.cancel_local(run_id, action)
        elif channel == EVENTS_CHANNEL:
            self._on_events(*payload.split(" ", 2))
        elif channel == THREAD_CHANNEL:
            thread_id, _, event_id = payload.partition(" ")
            if self.hub.has_thread_subscribers(thread_id):
                self._spawn(self._thread_event(thread_id, event_id))
        elif channel == RECONNECTED:
            self.workers.notify()
            for run_id in list(self._followed):
                self._catch_up_soon(run_id)

    def _on_events(self, run_id: str, thread_id: str, first: str) -> None:
        if run_id in self._followed:
            self._catch_up_soon(run_id)
        elif first != "done" and self.hub.has_thread_subscribers(thread_id):
            # A thread stream here: follow the run from the events just logged.
            self.hub.watch(run_id, thread_id, int(first))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.hub.background.add(task)
        task.add_done_callback(self.hub.background.discard)

    async def _thread_event(self, thread_id: str, event_id: str) -> None:
        try:
            async with self.storage.read() as tx:
                row = await tx.get_thread_event(thread_id, event_id)
        except Exception as exc:
            log.warning("reading thread event %s failed: %s", event_id, exc)
            return
        if row is not None:
            self.hub.thread_event(thread_id, event_id, row["event"], bytes(row["data"]))

    def _catch_up_soon(self, run_id: str) -> None:
        if run_id in self._busy:
            self._again.add(run_id)
            return
        self._busy.add(run_id)
        self._spawn(self._catch_up_loop(run_id))

    async def _catch_up_loop(self, run_id: str) -> None:
        try:
            while True:
                self._again.discard(run_id)
                try:
                    await self._catch_up(run_id)
                except Exception as exc:  # the poll loop tries again
                    log.debug("catching up run %s failed: %s", run_id, exc)
                    return
                if run_id not in self._again:
                    return
        finally:
            self._busy.discard(run_id)

    async def _catch_up(self, run_id: str) -> None:
        ch = self._followed.get(run_id)
        if ch is None or ch.local or ch.done:
            self._followed.pop(run_id, None)
            return
        async with self.storage.read() as tx:
            # Status first: a terminal status means every event is already in the log.
            run = await tx.get_run(run_id)
            rows = await tx.read_events(run_id, ch.next_seq - 1)
        if ch.local or ch.done:
            return
        for row in rows:
            self.hub.publish_at(ch, row["seq"], row["event"], bytes(row["data"]))
        if run is None or run["status"] in TERMINAL:
            self._followed.pop(run_id, None)
            self.hub.run_done(run_id, ch.thread_id)

    async def _poll_loop(self) -> None:
        """Once per interval, catch up the followed runs that have news: one query per 500
        runs, not two per run (a process may follow thousands of waiting runs)."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            followed = {r: ch for r, ch in self._followed.items() if not ch.local and not ch.done}
            ids = list(followed)
            for start in range(0, len(ids), POLL_BATCH):
                try:
                    await self._poll(followed, ids[start : start + POLL_BATCH])
                except Exception as exc:  # the next tick tries again
                    log.debug("polling followed runs failed: %s", exc)
                    break

    async def _poll(self, followed: dict[str, RunChannel], ids: list[str]) -> None:
        async with self.storage.read() as tx:
            rows = await tx.runs_progress(ids)
        seen = set()
        for row in rows:
            seen.add(row["run_id"])
            news = (row["last_seq"] or 0) >= followed[row["run_id"]].next_seq
            if news or row["status"] in TERMINAL:
                self._catch_up_soon(row["run_id"])
        for run_id in set(ids) - seen:  # deleted: the catch-up closes its channel
            self._catch_up_soon(run_id)
