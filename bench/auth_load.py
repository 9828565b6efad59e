"""The auth benchmark's load generator: every server in turn, burst after burst, in one process.

    python -m bench.auth_load '{"servers": [{"name", "url", "pids", "headers"}], ...}'

For each server: `threads` threads are created with its credentials (so they are its user's, in
its user's org) and it is warmed up. Then `rounds` times, for each workload and each server in
turn (the order rotates every round), a burst of `requests` requests from `concurrency`
keep-alive connections, the server's CPU read from /proc around it: short bursts interleaved,
so drift on a shared machine hits every server alike. A server's figure is its CPU over all its
bursts divided by their requests (tick rounding averages out). The client is a minimal HTTP/1.1
one on asyncio streams (~0.1 ms of CPU per request, a tenth of httpx's), so the load generator
takes little of the two cores from the servers. Prints one JSON object on its last line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from bench.client import Meter, child_main, summary

WORKLOADS = ("get", "search")  # GET /threads/{id}, POST /threads/search {"limit": 10}
SEARCH = json.dumps({"limit": 10}).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole response."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        fields = {"Host": parts.netloc, "Content-Type": "application/json", **headers}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        start = f"{method} {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n"
        self.writer.write(start.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        data = await self._body(self.reader, headers)
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        chunks = []
        while size := int((await reader.readline()).strip() or b"0", 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(chunks)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Target:
    """One server under test, with its connections and credentials."""

    def __init__(self, spec: dict[str, Any], concurrency: int) -> None:
        self.name: str = spec["name"]
        self.pids: list[int] = spec["pids"]
        self.connections = [Connection(spec["url"], spec["headers"]) for _ in range(concurrency)]
        self.thread_ids: list[str] = []
        self.bursts: dict[str, list[dict[str, Any]]] = {w: [] for w in WORKLOADS}
        self.errors = 0
        self.first_error: str | None = None

    async def setup(self, threads: int) -> None:
        for _ in range(threads):
            status, body = await self.connections[0].request("POST", "/threads", b"{}")
            if status != 200:
                raise RuntimeError(f"{self.name}: POST /threads answered {status}: {body[:200]!r}")
            self.thread_ids.append(json.loads(body)["thread_id"])

    async def request(self, connection: Connection, workload: str, index: int) -> None:
        if workload == "get":
            tid = self.thread_ids[index % len(self.thread_ids)]
            status, body = await connection.request("GET", f"/threads/{tid}")
        else:
            status, body = await connection.request("POST", "/threads/search", SEARCH)
        if status != 200:
            self.errors += 1
            self.first_error = self.first_error or f"{status}: {body[:200]!r}"

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


async def burst(target: Target, workload: str, requests: int) -> list[float]:
    """`requests` requests over the target's connections; each one's latency."""
    counter = itertools.count()
    latencies: list[float] = []

    async def client(connection: Connection) -> None:
        while (index := next(counter)) < requests:
            t0 = time.perf_counter()
            await target.request(connection, workload, index)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client(c) for c in target.connections))
    return latencies


async def measure(target: Target, workload: str, requests: int) -> None:
    with Meter(target.pids, []) as meter:
        latencies = await burst(target, workload, requests)
    target.bursts[workload].append(
        {
            "requests": requests,
            "server_cpu_s": round(meter.server, 4),
            "client_cpu_s": round(meter.client, 4),
            "wall_s": round(meter.wall, 4),
            "p50_ms": round(summary(latencies)["p50_ms"] or 0.0, 3),
        }
    )


def result(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": target.errors, "first_error": target.first_error}
    for workload, bursts in target.bursts.items():
        requests = sum(b["requests"] for b in bursts) or 1
        per_burst = [b["server_cpu_s"] * 1000 / b["requests"] for b in bursts]
        out[workload] = {
            "requests": requests,
            "server_cpu_ms_per_request": sum(b["server_cpu_s"] for b in bursts) * 1000 / requests,
            "server_cpu_ms_per_burst_quartiles": statistics.quantiles(per_burst, n=4)
            if len(per_burst) > 1
            else per_burst,
            # the standard error of the figure, from the bursts' spread
            "server_cpu_ms_se": statistics.stdev(per_burst) / len(per_burst) ** 0.5
            if len(per_burst) > 1
            else None,
            "client_cpu_ms_per_request": sum(b["client_cpu_s"] for b in bursts) * 1000 / requests,
            "server_cpu_util": sum(b["server_cpu_s"] for b in bursts)
            / (sum(b["wall_s"] for b in bursts) or 1),
            "p50_ms": statistics.median(b["p50_ms"] for b in bursts) if bursts else None,
            "bursts": bursts,
        }
    return out


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(s, spec["concurrency"]) for s in spec["servers"]]
    try:
        for target in targets:
            await target.setup(spec["threads"])
            for workload in WORKLOADS:
                await burst(target, workload, spec["warmup"])
        for round_no in range(spec["rounds"]):
            shift = round_no % len(targets)
            for workload in WORKLOADS:
                for target in targets[shift:] + targets[:shift]:
                    await measure(target, workload, spec["requests"])
        return {t.name: result(t) for t in targets}
    finally:
        for target in targets:
            await target.close()


if __name__ == "__main__":
    child_main(run)
