"""Streaming helpers for SSE and long-poll JSON responses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

HEARTBEAT_SECONDS = 5.0


async def with_heartbeat(source: AsyncIterator[bytes], beat: bytes) -> AsyncIterator[bytes]:
    """Interleave `beat` whenever `source` is quiet for HEARTBEAT_SECONDS."""
    it = source.__aiter__()
    pending: asyncio.Future[bytes] = asyncio.ensure_future(it.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                yield beat
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(it.__anext__())
    finally:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending
