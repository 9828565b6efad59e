"""Gauges read from the database at scrape time: the queue and the runs in flight are the
database's truth, the same whichever process (or machine) serves the scrape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from keel import clock
from keel.metrics.recorder import UNKNOWN

if TYPE_CHECKING:
    from keel.storage.base import Storage

STATUSES = ("pending", "running")


async def queue_families(storage: Storage, graphs: Iterable[str]) -> list[Metric]:
    """`keel_runs`, `keel_queue_depth`, `keel_queue_oldest_wait_seconds`,
    `keel_runs_lease_overdue`; every graph of `graphs` appears, at 0 when it has no run."""
    now = clock.now()
    async with storage.read() as tx:
        rows = await tx.queue_gauges(now, clock.iso(now))
    runs = GaugeMetricFamily("keel_runs", "Runs pending or running", labels=["status", "graph"])
    depth = GaugeMetricFamily("keel_queue_depth", "Pending runs that are due", labels=["graph"])
    oldest = GaugeMetricFamily(
        "keel_queue_oldest_wait_seconds", "Age of the oldest due pending run", labels=["graph"]
    )
    overdue = GaugeMetricFamily(
        "keel_runs_lease_overdue", "Running runs whose lease expired", labels=["graph"]
    )
    counts: dict[tuple[str, str], int] = {(s, g): 0 for g in graphs for s in STATUSES}
    due: dict[str, int] = {g: 0 for _, g in counts}
    waits: dict[str, float] = {g: 0.0 for _, g in counts}
    late: dict[str, int] = {g: 0 for _, g in counts}
    for row in rows:
        graph = str(row["graph_id"] or UNKNOWN)
        key = (str(row["status"]), graph)
        counts[key] = counts.get(key, 0) + int(row["n"])
        due[graph] = due.get(graph, 0) + int(row["due"] or 0)
        late[graph] = late.get(graph, 0) + int(row["overdue"] or 0)
        if row["oldest_due"]:
            waits[graph] = max(waits.get(graph, 0.0), now - clock.parse(row["oldest_due"]))
    for (status, graph), n in sorted(counts.items()):
        runs.add_metric([status, graph], n)
    for graph in sorted(due):
        depth.add_metric([graph], due[graph])
        oldest.add_metric([graph], max(waits.get(graph, 0.0), 0.0))
        overdue.add_metric([graph], late.get(graph, 0))
    return [runs, depth, oldest, overdue]


def pool_families(storage: Storage) -> list[Metric]:
    """This process's connection pool (PostgreSQL only)."""
    stats = storage.pool_stats()
    if stats is None:
        return []
    conns = GaugeMetricFamily(
        "keel_db_pool_connections", "Pooled connections of this process", labels=["state"]
    )
    conns.add_metric(["in_use"], stats["in_use"])
    conns.add_metric(["idle"], stats["idle"])
    return [
        conns,
        GaugeMetricFamily("keel_db_pool_max_connections", "Pool size limit", stats["max"]),
        GaugeMetricFamily(
            "keel_db_pool_waiting", "Requests waiting for a connection", stats["waiting"]
        ),
    ]
