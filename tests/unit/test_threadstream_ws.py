"""The WebSocket transport's bounded outbound queue: a slow client gets the end marker (it is
then told `resume_gap` with the last seq it was sent, and closed), memory stays bounded; a failed
read's end takes the slot kept for it."""

from __future__ import annotations

import asyncio

from keel.http.threadstream_ws import FAILED, OVERFLOW, End, Item, offer
from keel.settings.http import DEFAULT_WS_SEND_QUEUE, _http


def test_a_full_queue_ends_with_the_marker_and_stays_bounded() -> None:
    out: asyncio.Queue[Item] = asyncio.Queue(maxsize=4)
    assert offer(out, (None, {"seq": 1}))
    assert offer(out, (None, {"seq": 2}))
    assert offer(out, (None, {"seq": 3}))
    assert not offer(out, (None, {"seq": 4}))  # full: the client is too slow
    assert not offer(out, (None, {"seq": 5}))
    assert not offer(out, End(FAILED, "late"))  # the first end wins
    frames = [out.get_nowait() for _ in range(out.qsize())]
    # Every frame queued before the marker is kept: resuming after seq 3 loses nothing.
    assert frames == [(None, {"seq": 1}), (None, {"seq": 2}), (None, {"seq": 3}), End(OVERFLOW)]


def test_a_failure_ends_the_queue_after_its_frames() -> None:
    out: asyncio.Queue[Item] = asyncio.Queue(maxsize=3)
    assert offer(out, (None, {"seq": 1}))
    assert not offer(out, End(FAILED, "storage down"))
    assert [out.get_nowait() for _ in range(2)] == [(None, {"seq": 1}), End(FAILED, "storage down")]


def test_the_bound_is_a_setting() -> None:
    assert _http(None).ws_send_queue == DEFAULT_WS_SEND_QUEUE == 10_000
    assert _http({"ws_send_queue": 64}).ws_send_queue == 64
