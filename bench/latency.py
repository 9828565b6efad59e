"""Sequential create-thread + runs.wait latency through the official SDK, and server CPU per run.

    python -m bench.latency [--runs 300]

Starts `keel serve` on a free 127.0.0.1 port with a fresh SQLite file, warms up, then measures.
Server CPU comes from the OS accounting of the server process (utime + stime); the client runs
in this process, so its CPU is reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from langgraph_sdk import get_client

from tests.support.server import KeelServer

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "keel.json"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    import os

    return ticks / os.sysconf("SC_CLK_TCK")


async def measure(url: str, runs: int) -> list[float]:
    client = get_client(url=url, api_key=None)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "pipeline", input={"topic": "bench"})
        out.append(time.perf_counter() - t0)
    await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = KeelServer(CONFIG, Path(tmp))
        server.start()
        try:
            assert server.proc is not None
            asyncio.run(measure(server.url, 30))
            cpu0, client0 = cpu_seconds(server.proc.pid), time.process_time()
            samples = asyncio.run(measure(server.url, args.runs))
            server_cpu = (cpu_seconds(server.proc.pid) - cpu0) / args.runs
            client_cpu = (time.process_time() - client0) / args.runs
        finally:
            server.stop()
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p95 = samples[int(len(samples) * 0.95) - 1] * 1000
    print(f"create-thread + runs.wait, 3-node graph, {args.runs} sequential runs")
    print(f"p50 {p50:.2f} ms  p95 {p95:.2f} ms")
    print(f"server CPU {server_cpu * 1000:.2f} ms/run  client CPU {client_cpu * 1000:.2f} ms/run")


if __name__ == "__main__":
    main()
