"""`Metrics`: one app's (or one worker process's) registry and recorder, and the scrape.

Single process: the recorder's metrics live in a registry of this `Metrics` (none is global).
Several processes on one host (`PROMETHEUS_MULTIPROC_DIR` set in their environment before they
start): prometheus_client writes each process's values to files in that directory and a scrape
sums every process's files (`MultiProcessCollector`), so an API process serves the counts of the
`keel worker` processes beside it. Gauges read from the database are added at scrape time.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from keel.metrics.database import pool_families, queue_families
from keel.metrics.recorder import PromRecorder, Recorder

if TYPE_CHECKING:
    from keel.storage.base import Storage

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_FILE = re.compile(r"_(\d+)\.db$")


class _Families(Collector):
    """Metric families computed just now, exposed once."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def multiproc_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges (runs executing, SSE subscribers) of processes that are gone; their
    counters and histograms stay, so the sums never go down."""
    files = glob.glob(os.path.join(path, "*.db"))
    pids = {int(m.group(1)) for f in files if (m := _PID_FILE.search(f))}
    for pid in pids:
        if pid != os.getpid() and not _alive(pid):
            mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class Metrics:
    """The recorder Keel's parts report to, and what `GET /metrics` serves."""

    def __init__(self, recorder: Recorder, exposed: CollectorRegistry | None) -> None:
        self.recorder = recorder
        self.exposed = exposed  # None: metrics off

    @classmethod
    def off(cls) -> Metrics:
        return cls(Recorder(), None)

    @classmethod
    def build(cls) -> Metrics:
        own = CollectorRegistry(auto_describe=True)
        recorder = PromRecorder(own)
        path = multiproc_dir()
        if path is None:
            return cls(recorder, own)
        forget_dead_processes(path)
        exposed = CollectorRegistry()
        # Every process's files, this one's included.
        MultiProcessCollector(exposed, path)  # type: ignore[no-untyped-call]
        return cls(recorder, exposed)

    @property
    def enabled(self) -> bool:
        return self.exposed is not None

    def close(self) -> None:
        """At a process's stop: its live gauges leave the multi-process sums."""
        path = multiproc_dir()
        if self.enabled and path is not None:
            mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]

    async def render(self, storage: Storage, graphs: Iterable[str]) -> bytes:
        """The exposition: this process's (or this host's) metrics, then the database's."""
        assert self.exposed is not None
        path = multiproc_dir()
        if path is not None:  # a process killed since: its live gauges are not live
            forget_dead_processes(path)
        families = await queue_families(storage, graphs) + pool_families(storage)
        return generate_latest(self.exposed) + generate_latest(_Families(families))
