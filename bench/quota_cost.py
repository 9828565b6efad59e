"""The per-request cost of the requests-per-second quota (keel/auth/ratelimit.py).

    python -m bench.quota_cost [--requests 3000] [--clients 8]

Starts a private PostgreSQL (fsync on, as a benchmark), then times `SqlLimiter.admit` (the
buckets every process shares): with a rate so low that every admitted request leases its own
token (one upsert per request: the worst case), for one bucket (the org) and two (a key and its
org), one caller at a time, then `--clients` concurrent callers on the same rows (their lock is
the contention point); then with a rate high enough for leases of many tokens; and
`MemoryLimiter.admit` (SQLite servers). The buckets are deep enough that nothing is refused.
Prints, per request: wall latency, CPU of this (Keel's) process, CPU of PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.procfs import cpu_seconds
from keel.auth.ratelimit import Bucket, MemoryLimiter, Rate, SqlLimiter
from keel.storage.postgres import PostgresStorage
from tests.support.postgres import PgCluster

DEEP = 1_000_000_000  # tokens: never empty
# rate * LEASE_SECONDS < 2: one statement per admitted request.
ORG, KEY = Bucket("org:a", "org", Rate(10.0, DEEP)), Bucket("key:a", "key", Rate(10.0, DEEP))
# Leases of up to 10,000 tokens.
BUSY_ORG = Bucket("org:b", "org", Rate(1e5, DEEP))
BUSY_KEY = Bucket("key:b", "key", Rate(1e5, DEEP))


CASES = (
    ("postgres, a statement per request, org", [ORG]),
    ("postgres, a statement per request, key+org", [KEY, ORG]),
    ("postgres, leased, key+org", [BUSY_KEY, BUSY_ORG]),
)
Limiter = SqlLimiter | MemoryLimiter


async def _measure(
    name: str, limiter: Limiter, buckets: list[Bucket], n: int, clients: int, pg: list[int]
) -> None:
    per_client = n // clients

    async def client() -> None:
        for _ in range(per_client):
            assert await limiter.admit(buckets) is None

    await asyncio.gather(*(client() for _ in range(clients)))  # warm up: rows, plans, pool
    wall, cpu, pg_cpu = time.perf_counter(), time.process_time(), cpu_seconds(pg)
    await asyncio.gather(*(client() for _ in range(clients)))
    done = per_client * clients
    wall = (time.perf_counter() - wall) / done * 1e3
    cpu = (time.process_time() - cpu) / done * 1e3
    pg_ms = (cpu_seconds(pg) - pg_cpu) / done * 1e3 if pg else 0.0
    print(
        f"{name:<44} {clients:>2} clients: {wall:6.3f} ms wall, {cpu:6.3f} ms Keel CPU, "
        f"{pg_ms:6.3f} ms PostgreSQL CPU per request"
    )


async def main(n: int, clients: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = PgCluster(Path(tmp), fast=False)
        cluster.start()
        try:
            storage = PostgresStorage(cluster.create_database())
            await storage.open()
            pg = [cluster.proc.pid] if cluster.proc else []
            try:
                for name, buckets in CASES:
                    for c in (1, clients):
                        await _measure(name, SqlLimiter(storage), buckets, n, c, pg)
                await _measure("memory, key+org", MemoryLimiter(), [KEY, ORG], n, 1, [])
            finally:
                await storage.close()
        finally:
            cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("KEEL_LOG_LEVEL", "warning")
    asyncio.run(main(args.requests, args.clients))
