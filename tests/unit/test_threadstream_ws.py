"""The WebSocket transport's bounded outbound queue: a slow client gets the end marker (it is
then told `resume_gap` with the last seq it was sent, and closed), memory stays bounded."""

from __future__ import annotations

import asyncio

from keel.http.threadstream import _offer
from keel.storage.tx import Row


def test_a_full_queue_ends_with_the_marker_and_stays_bounded() -> None:
    out: asyncio.Queue[Row | None] = asyncio.Queue(maxsize=4)
    assert _offer(out, {"seq": 1})
    assert _offer(out, {"seq": 2})
    assert _offer(out, {"seq": 3})
    assert not _offer(out, {"seq": 4})  # full: the client is too slow
    assert not _offer(out, {"seq": 5})
    frames = [out.get_nowait() for _ in range(out.qsize())]
    # Every frame queued before the marker is kept: resuming after seq 3 loses nothing.
    assert frames == [{"seq": 1}, {"seq": 2}, {"seq": 3}, None]
