"""Reading a run's events: its live channel in this process when it is still executing, or
its stored event log; replay after a `Last-Event-ID`, then live following. Also the thread
stream's replay across a thread's runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from keel.storage.base import Storage
from keel.streams import TERMINAL, Event, RunChannel, StreamHub, parse_last_event_id


async def live_channel(
    storage: Storage, hub: StreamHub, run_id: str, thread_id: str
) -> RunChannel | None:
    """The run's live channel in this process (opened now for a run still to execute), or
    None when the run is finished or gone."""
    ch = hub.get(run_id)
    if ch is not None:
        return ch
    async with storage.read() as tx:
        run = await tx.get_run(run_id)
        last = await tx.max_event_seq(run_id)
    ch = hub.get(run_id)  # the read may have let the worker open (or close) it
    if ch is not None:
        return ch
    if run is None or run["status"] in TERMINAL or hub.is_finished(run_id):
        return None
    return hub.watch(run_id, thread_id, last + 1)


async def run_events(
    storage: Storage,
    hub: StreamHub,
    run_id: str,
    thread_id: str,
    after: int | None,
    *,
    follow: bool = True,
) -> AsyncIterator[Event]:
    """Replay a run's events after `after` (None: only new ones), then follow it live
    (or, with `follow=False`, stop at what has been published so far)."""
    ch = await live_channel(storage, hub, run_id, thread_id)
    if ch is None:
        if after is not None:
            async with storage.read() as tx:
                rows = await tx.read_events(run_id, after)
            for r in rows:
                yield Event(r["seq"], r["event"], r["data"])
        return
    if after is None:
        after = ch.next_seq - 1
    first_live = ch.events[0].seq if ch.events else ch.next_seq
    if after + 1 < first_live:
        async with storage.read() as tx:
            rows = await tx.read_events(run_id, after)
        for r in rows:
            if r["seq"] < first_live:
                yield Event(r["seq"], r["event"], r["data"])
                after = r["seq"]
    if not follow:
        for ev in list(ch.events):
            if ev.seq > after:
                yield ev
        return
    async for ev in ch.follow(after):
        yield ev


async def thread_events(
    storage: Storage, hub: StreamHub, thread_id: str, last_event_id: str
) -> AsyncIterator[tuple[str, Event]]:
    """Stored events of a thread's runs after `<run_id>.<seq>` (or all, for -1/0/-), with
    thread-stream ids."""
    run_id, _, seq = last_event_id.rpartition(".")
    async with storage.read() as tx:
        run_ids = await tx.thread_run_ids(thread_id)
    if run_id in run_ids:
        run_ids = run_ids[run_ids.index(run_id) :]
    elif last_event_id not in ("-1", "0", "-"):
        return
    for rid in run_ids:
        after = parse_last_event_id(seq) if rid == run_id else 0
        async for ev in run_events(storage, hub, rid, thread_id, after, follow=False):
            yield f"{rid}.{ev.seq}", ev
