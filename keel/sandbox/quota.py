"""The workspace quota while a command runs: the workspace's size polled, the command's process
group killed once it is over `workspace_bytes`.

Cost is bounded: one walk of the workspace (in a thread) every `INTERVAL` seconds, or every four
walks' duration when walking takes longer (a workspace of very many files). Overshoot: what the
command writes between two polls plus the time the kill takes, and never more than
`file_bytes` per file it writes (RLIMIT_FSIZE); docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from keel.sandbox import workspaces

INTERVAL = 0.25  # seconds between two polls at least
WALKS_PER_POLL = 4  # a walk takes at most a quarter of the time between polls

# Given the command's kill switch, waits until the quota is exceeded (then kills, True).
Watch = Callable[[Callable[[], None]], Awaitable[bool]]


def watcher(workspace: Path, quota: int) -> Watch:
    """A watch over `workspace`: cancelled when the command ends by itself."""

    async def watch(kill: Callable[[], None]) -> bool:
        pause = INTERVAL  # the check before the command is the first poll: short ones cost none
        while True:
            await asyncio.sleep(pause)
            started = time.monotonic()
            used = await asyncio.to_thread(workspaces.usage, workspace)
            if used > quota:
                kill()
                return True
            pause = max(INTERVAL, WALKS_PER_POLL * (time.monotonic() - started))

    return watch
