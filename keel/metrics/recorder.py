"""What Keel's hot paths tell the metrics: `Recorder` does nothing (metrics off costs a call to
an empty method); `PromRecorder` counts into prometheus_client metrics of one registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from keel import clock

Row = Mapping[str, Any]

# Seconds: from a few milliseconds (an echo graph) to an hour (an agent at work).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
UNKNOWN = "unknown"


def graph_of(run: Row) -> str:
    """The graph id a run row executes (its config carries it)."""
    kwargs = run.get("kwargs") or {}
    configurable = (kwargs.get("config") or {}).get("configurable") or {}
    return str(configurable.get("graph_id") or UNKNOWN)


class Recorder:
    """Metrics off: every method does nothing; `enabled` lets a caller skip measuring."""

    enabled = False

    def run_created(self, graph: str) -> None:
        """A run was committed (by a request, a cron or a trigger)."""

    def run_claimed(self, run: Row, now: float) -> None:
        """A worker claimed (an attempt at) `run` at `now`."""

    def run_finished(self, run: Row, status: str, claimed: float) -> None:
        """`run`'s terminal status was recorded; this attempt was claimed at `claimed`."""

    def executing(self, delta: int) -> None:
        """Runs executed by this process went up or down by `delta`."""

    def leases_expired(self, count: int) -> None:
        """The reaper re-queued `count` runs whose lease ran out."""

    def lease_lost(self) -> None:
        """This process stopped a run whose lease it lost or could not renew in time."""

    def events_written(self, count: int) -> None:
        """`count` run events reached the event log."""

    @contextmanager
    def sse_subscriber(self) -> Iterator[None]:
        """An SSE stream is open for the duration of the block."""
        yield

    def store_searched(self, kind: str, seconds: float) -> None:
        """One store search (`kind`: semantic or filter) took `seconds`."""

    def query_done(self, seconds: float) -> None:
        """One statement of Keel's on PostgreSQL took `seconds` (a round trip)."""

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        """A webhook call was made: `delivered`, `retry` or `failed` (given up)."""


class PromRecorder(Recorder):
    """Counts into metrics registered in `registry` (in multi-process mode, prometheus_client
    writes them to this process's files as well: keel.metrics.exposition)."""

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.created = Counter("keel_runs_created", "Runs created", ["graph"], registry=r)
        self.claimed = Counter("keel_runs_claimed", "Run attempts claimed", ["graph"], registry=r)
        self.recovered = Counter(
            "keel_runs_recovered",
            "Claims of a run's second or later attempt",
            ["graph"],
            registry=r,
        )
        self.finished = Counter(
            "keel_runs_finished", "Runs ended, by status", ["graph", "status"], registry=r
        )
        self.duration = Histogram(
            "keel_run_duration_seconds",
            "Claim to recorded end of a run's attempt",
            ["graph", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.wait = Histogram(
            "keel_run_queue_wait_seconds",
            "Due to first claim of a run",
            ["graph"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.running = Gauge(
            "keel_runs_executing",
            "Runs this process executes now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.expired = Counter("keel_lease_expiries", "Runs re-queued by the reaper", registry=r)
        self.lost = Counter("keel_leases_lost", "Runs stopped on a lost lease", registry=r)
        self.events = Counter("keel_run_events_written", "Run events logged", registry=r)
        self.sse = Gauge(
            "keel_sse_subscribers", "Open SSE streams", registry=r, multiprocess_mode="livesum"
        )
        self.query = Histogram(
            "keel_db_query_seconds",
            "Keel's statements on PostgreSQL",
            buckets=SEARCH_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "keel_webhook_attempts", "Webhook calls, by outcome", ["outcome"], registry=r
        )
        self.webhook_time = Histogram(
            "keel_webhook_attempt_seconds",
            "One webhook call, resolution to answer",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.search = Histogram(
            "keel_store_search_seconds",
            "Store searches",
            ["kind"],
            buckets=SEARCH_BUCKETS,
            registry=r,
        )

    def _labelled(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, kept: prometheus_client checks and locks on every call.
        Label values are graph ids, statuses and kinds: a bounded set."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def run_created(self, graph: str) -> None:
        self._labelled(self.created, graph).inc()

    def run_claimed(self, run: Row, now: float) -> None:
        graph = graph_of(run)
        self._labelled(self.claimed, graph).inc()
        if int(run["attempt"]) > 1:
            self._labelled(self.recovered, graph).inc()
        else:  # queue wait: from due (created_at includes after_seconds) to the first claim
            wait = max(now - clock.parse(run["created_at"]), 0.0)
            self._labelled(self.wait, graph).observe(wait)

    def run_finished(self, run: Row, status: str, claimed: float) -> None:
        graph = graph_of(run)
        self._labelled(self.finished, graph, status).inc()
        self._labelled(self.duration, graph, status).observe(max(clock.now() - claimed, 0.0))

    def executing(self, delta: int) -> None:
        self.running.inc(delta)

    def leases_expired(self, count: int) -> None:
        self.expired.inc(count)

    def lease_lost(self) -> None:
        self.lost.inc()

    def events_written(self, count: int) -> None:
        self.events.inc(count)

    @contextmanager
    def sse_subscriber(self) -> Iterator[None]:
        self.sse.inc()
        try:
            yield
        finally:
            self.sse.dec()

    def store_searched(self, kind: str, seconds: float) -> None:
        self._labelled(self.search, kind).observe(seconds)

    def query_done(self, seconds: float) -> None:
        self.query.observe(seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self._labelled(self.webhooks, outcome).inc()
        self.webhook_time.observe(seconds)
