"""Per-run event logs: live fan-out in memory, durable copy in the database, SSE encoding.

Every event of a run gets a strictly increasing integer id (`seq`). While a run executes in this
process its events live in a `RunChannel`; the worker flushes them to the `run_events` table in
small batches and once more, in the same transaction as the terminal status, when the run ends.
A subscriber replays from the channel (or, when the run is not live here, from the table) and
then follows live events. Waiting is signal-driven: no subscriber ever sleeps on a timer.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from keel.serde import dumps

TERMINAL = ("success", "error", "timeout", "interrupted", "cancelled")


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event: str
    data: bytes  # compact JSON


@dataclass(eq=False)
class RunChannel:
    run_id: str
    thread_id: str
    next_seq: int = 1
    events: list[Event] = field(default_factory=list)
    flushed: int = 0  # events[:flushed] are in the database
    local: bool = False  # executed by this process (else relayed from the database, if shared)
    done: bool = False
    result: object = None
    _signal: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, event: str, data: bytes) -> Event:
        ev = Event(self.next_seq, event, data)
        self.next_seq += 1
        self.events.append(ev)
        self._wake()
        return ev

    def _wake(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    def close(self) -> None:
        self.done = True
        self._wake()

    def unflushed(self) -> list[Event]:
        return self.events[self.flushed :]

    async def closed(self) -> None:
        """Return once the run's event log is complete."""
        while not self.done:
            await self._signal.wait()

    async def follow(self, after: int) -> AsyncIterator[Event]:
        idx = 0
        while True:
            while idx < len(self.events):
                ev = self.events[idx]
                idx += 1
                if ev.seq > after:
                    yield ev
            if self.done:
                return
            await self._signal.wait()


FEED_QUEUE = 10_000  # live events held for one thread-feed subscriber (KEEL_STREAM_QUEUE)
FeedItem = tuple[str, str, bytes]  # (event id "<run_id>.<seq>", event name, data)


class FeedOverflow(Exception):
    """A bounded feed's subscriber fell behind: what it was not given is lost to it."""


class FeedQueue(asyncio.Queue[FeedItem]):
    """A thread feed's queue for one subscriber, bounded (`bound` events): an item arriving
    when it holds that many is dropped and so is every later one (`overflowed`), so what it
    holds stays a gapless prefix. Once that prefix is drained, the subscriber reads what it
    missed from the runs' event logs, which hold everything (`restart`), or `get` raises
    FeedOverflow. `keeps` (given an event's name) drops what the subscriber would not send,
    uncounted."""

    def __init__(self, bound: int = FEED_QUEUE, keeps: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.bound = bound
        self.keeps = keeps
        self.overflowed = False

    def put_nowait(self, item: FeedItem) -> None:
        if self.overflowed or (self.keeps is not None and not self.keeps(item[1])):
            return
        if self.qsize() >= self.bound:
            self.overflowed = True
            return
        super().put_nowait(item)

    async def get(self) -> FeedItem:
        if self.overflowed and self.empty():
            raise FeedOverflow(f"over {self.bound} events behind")
        return await super().get()

    def restart(self) -> bool:
        """True, once, when the prefix held before an overflow is drained: the subscriber
        re-reads the logs after its last event, and the queue takes events again."""
        if not (self.overflowed and self.empty()):
            return False
        self.overflowed = False
        return True


class ThreadFeed:
    """Fan-out of every event on one thread to its stream subscribers."""

    def __init__(self) -> None:
        self.queues: set[FeedQueue] = set()

    def put(self, event_id: str, event: str, data: bytes) -> None:
        for q in self.queues:
            q.put_nowait((event_id, event, data))


class StreamHub:
    """All live run channels and thread feeds of this process.

    With a shared database, `watcher` (the relay) is told of every channel opened for a run that
    some other process may be executing, and fills it from the database.
    """

    def __init__(self, finished_memory: int = 10_000, feed_queue: int = FEED_QUEUE) -> None:
        self.feed_queue = feed_queue
        self._channels: dict[str, RunChannel] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._finished_memory = finished_memory
        self._threads: dict[str, ThreadFeed] = {}
        self.background: set[asyncio.Task[object]] = set()
        self.watcher: Callable[[RunChannel], None] | None = None

    def get(self, run_id: str) -> RunChannel | None:
        return self._channels.get(run_id)

    def is_finished(self, run_id: str) -> bool:
        return run_id in self._finished

    def open(self, run_id: str, thread_id: str, next_seq: int) -> RunChannel:
        """The channel of a run this process is about to execute."""
        ch = self._channels.get(run_id)
        if ch is None:
            ch = RunChannel(run_id, thread_id, next_seq)
            self._channels[run_id] = ch
        else:
            ch.next_seq = max(ch.next_seq, next_seq)
        ch.local = True
        self._finished.pop(run_id, None)
        return ch

    def watch(self, run_id: str, thread_id: str, next_seq: int) -> RunChannel:
        """A channel to follow a run that is not finished, wherever it executes."""
        ch = self._channels.get(run_id)
        if ch is None:
            ch = RunChannel(run_id, thread_id, next_seq)
            self._channels[run_id] = ch
            self._finished.pop(run_id, None)
        if not ch.local and self.watcher is not None:
            self.watcher(ch)
        return ch

    def publish(self, ch: RunChannel, event: str, data: bytes) -> Event:
        ev = ch.append(event, data)
        feed = self._threads.get(ch.thread_id)
        if feed is not None:
            feed.put(f"{ch.run_id}.{ev.seq}", event, data)
        return ev

    def publish_at(self, ch: RunChannel, seq: int, event: str, data: bytes) -> None:
        """Publish an event read back from the log (ids it already has are skipped)."""
        if seq >= ch.next_seq:
            ch.next_seq = seq
            self.publish(ch, event, data)

    def close(self, run_id: str, finished: bool = True) -> None:
        """Close a run's channel; `finished=False` when the run was only handed back."""
        ch = self._channels.pop(run_id, None)
        if finished:
            self._finished[run_id] = None
            while len(self._finished) > self._finished_memory:
                self._finished.popitem(last=False)
        if ch is not None:
            ch.close()

    def run_done(self, run_id: str, thread_id: str) -> None:
        """Close a finished run's channel and tell the thread's subscribers."""
        self.close(run_id)
        done = dumps({"status": "run_done", "run_id": run_id})
        self.thread_event(thread_id, f"{run_id}.done", "metadata", done)

    def has_thread_subscribers(self, thread_id: str) -> bool:
        return thread_id in self._threads

    def thread_event(self, thread_id: str, event_id: str, event: str, data: bytes) -> None:
        feed = self._threads.get(thread_id)
        if feed is not None:
            feed.put(event_id, event, data)

    def subscribe_thread(
        self, thread_id: str, bound: int | None = None, keeps: Callable[[str], bool] | None = None
    ) -> FeedQueue:
        """A queue of the thread's events from now on (`bound`, default the hub's, and `keeps`:
        see FeedQueue)."""
        q = FeedQueue(bound or self.feed_queue, keeps)
        self._threads.setdefault(thread_id, ThreadFeed()).queues.add(q)
        return q

    def unsubscribe_thread(self, thread_id: str, q: FeedQueue) -> None:
        feed = self._threads.get(thread_id)
        if feed is None:
            return
        feed.queues.discard(q)
        if not feed.queues:
            del self._threads[thread_id]


# ------------------------------------------------------------------------ SSE
def sse(event: str, data: bytes, event_id: str | int | None = None) -> bytes:
    out = b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        out += b"id: " + str(event_id).encode() + b"\r\n"
    return out + b"\r\n"


def sse_json(event: str, payload: object, event_id: str | int | None = None) -> bytes:
    return sse(event, dumps(payload), event_id)


HEARTBEAT = b": heartbeat\r\n\r\n"


def mode_filter(modes: Iterable[str] | None) -> set[str] | None:
    """The set of base event names a join-stream keeps, or None for everything."""
    if not modes:
        return None
    keep = set(modes) | {"metadata", "error"}
    if "messages" in keep or "messages-tuple" in keep:
        keep |= {"messages", "messages-tuple"}
    return keep


def wanted(event: str, keep: set[str] | None) -> bool:
    if keep is None:
        return True
    base = event.split("|", 1)[0].split("/", 1)[0]
    return base in keep


def parse_last_event_id(value: str | None) -> int:
    """The seq after which to replay; -1, 0, '-' or garbage mean "from the beginning"."""
    if not value:
        return 0
    try:
        return max(int(value.strip().rsplit(".", 1)[-1]), 0)
    except ValueError:
        return 0
