"""The auth benchmark's load generator: every server in turn, round after round, in one process.

    python -m bench.auth_load '{"servers": [{"name", "url", "pids", "headers"}], ...}'

For each server: `threads` threads are created with its credentials (so they are its user's,
in its user's org); after a warm-up, each round measures, for each workload and each server in
turn (the order rotates every round, so drift on a shared machine hits all alike), `requests`
requests from `concurrency` concurrent clients, and the server's CPU read from /proc around them.
Prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import time
from typing import Any

import httpx

from bench.client import Meter, summary

WORKLOADS = ("get", "search")  # GET /threads/{id}, POST /threads/search {"limit": 10}


class Target:
    """One server under test, with its own connection pool and credentials."""

    def __init__(self, spec: dict[str, Any], concurrency: int) -> None:
        self.name: str = spec["name"]
        self.pids: list[int] = spec["pids"]
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(
            base_url=spec["url"], headers=spec["headers"], limits=limits, timeout=60.0
        )
        self.thread_ids: list[str] = []
        self.rounds: dict[str, list[dict[str, Any]]] = {w: [] for w in WORKLOADS}
        self.errors = 0
        self.first_error: str | None = None

    async def setup(self, threads: int) -> None:
        for _ in range(threads):
            response = await self.http.post("/threads", json={})
            response.raise_for_status()
            self.thread_ids.append(response.json()["thread_id"])

    async def request(self, workload: str, index: int) -> None:
        if workload == "get":
            tid = self.thread_ids[index % len(self.thread_ids)]
            response = await self.http.get(f"/threads/{tid}")
        else:
            response = await self.http.post("/threads/search", json={"limit": 10})
        if response.status_code != 200:
            self.errors += 1
            self.first_error = self.first_error or f"{response.status_code}: {response.text[:200]}"


async def burst(target: Target, workload: str, requests: int, concurrency: int) -> list[float]:
    """`requests` requests from `concurrency` clients; each one's latency."""
    counter = itertools.count()
    latencies: list[float] = []

    async def client() -> None:
        while (index := next(counter)) < requests:
            t0 = time.perf_counter()
            await target.request(workload, index)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


async def measure(target: Target, workload: str, spec: dict[str, Any]) -> None:
    requests, concurrency = spec["requests"], spec["concurrency"]
    with Meter(target.pids, []) as meter:
        latencies = await burst(target, workload, requests, concurrency)
    figures = {**summary(latencies), **meter.per_run(requests)}
    figures["server_cpu_ms_per_request"] = figures.pop("server_cpu_ms_per_run")
    figures["client_cpu_ms_per_request"] = figures.pop("client_cpu_ms_per_run")
    target.rounds[workload].append(figures)


def result(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": target.errors, "first_error": target.first_error}
    for workload, rounds in target.rounds.items():
        cpu = [r["server_cpu_ms_per_request"] for r in rounds]
        p50 = [r["p50_ms"] for r in rounds if r["p50_ms"] is not None]
        out[workload] = {
            "server_cpu_ms_per_request": statistics.median(cpu) if cpu else None,
            "server_cpu_ms_per_request_min": min(cpu) if cpu else None,
            "p50_ms": statistics.median(p50) if p50 else None,
            "client_cpu_ms_per_request": statistics.median(
                r["client_cpu_ms_per_request"] for r in rounds
            )
            if rounds
            else None,
            "rounds": rounds,
        }
    return out


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(s, spec["concurrency"]) for s in spec["servers"]]
    try:
        for target in targets:
            await target.setup(spec["threads"])
            for workload in WORKLOADS:
                await burst(target, workload, spec["warmup"], spec["concurrency"])
        for round_no in range(spec["rounds"]):
            shift = round_no % len(targets)
            order = targets[shift:] + targets[:shift]
            for workload in WORKLOADS:
                for target in order:
                    await measure(target, workload, spec)
        return {t.name: result(t) for t in targets}
    finally:
        for target in targets:
            await target.http.aclose()


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        out = asyncio.run(run(spec))
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
