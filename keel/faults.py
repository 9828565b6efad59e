"""Fault points: named places in a run's life where a test can hold it, to force a race.

Off (a free no-op) unless the environment variable `KEEL_FAULTS` names a directory. Then:
- a point is armed for the runs of one thread by a file `<point>.<thread_id>` in that directory;
- a run reaching an armed point writes `<point>.<thread_id>.held` (holding its run id) and
  waits until `<point>.<thread_id>.go` exists, at most `KEEL_FAULTS_HOLD` seconds (30), then
  goes on as if nothing happened.
While a run is held the test cancels it, deletes its thread or assistant, or kills the server;
`tests/support/faults.py` is the test side. Never set `KEEL_FAULTS` in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("keel.faults")

# Every point, in the order a run meets them (`cancel-read` is on the cancelling side).
POINTS = (
    "after-claim",  # claimed (status running, lease taken); no task executes it yet
    "run-start",  # its task has started; nothing done yet
    "channel-open",  # its event channel is open and `metadata` published; graph not started
    "before-graph",  # cancellable from here on: the graph is about to be built and run
    "before-record",  # the run has ended; its terminal state is about to be written
    "cancel-read",  # a cancel request has read the runs it cancels, in its transaction
    # A cron's firing (keel.scheduler), armed by cron id instead of thread id:
    "cron-fire",  # its run created and its slot advanced, the transaction not yet committed
    "cron-fired",  # that transaction committed; nothing else done yet
)


@dataclasses.dataclass(frozen=True)
class Faults:
    directory: Path | None = None
    hold: float = 30.0
    poll: float = 0.01

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Faults:
        raw = environ.get("KEEL_FAULTS", "")
        if not raw:
            return cls()
        return cls(Path(raw), float(environ.get("KEEL_FAULTS_HOLD", "30")))

    async def point(self, name: str, thread_id: str, run_id: str) -> None:
        """Hold here if a test armed this point for the thread; otherwise return at once."""
        if self.directory is None:
            return
        if name not in POINTS:
            raise ValueError(f"unknown fault point {name!r}")
        armed = self.directory / f"{name}.{thread_id}"
        if not armed.exists():
            return
        go = armed.with_name(armed.name + ".go")
        if go.exists():
            return
        partial = armed.with_name(armed.name + ".partial")
        partial.write_text(run_id)
        partial.replace(armed.with_name(armed.name + ".held"))  # appears whole
        log.warning("fault point %s: holding run %s", name, run_id)
        deadline = time.monotonic() + self.hold
        while not go.exists():
            if time.monotonic() > deadline:
                log.warning("fault point %s: run %s not released in time", name, run_id)
                return
            await asyncio.sleep(self.poll)
