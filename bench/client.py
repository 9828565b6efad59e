"""The load generator: one workload against one server, in its own process, through `langgraph-sdk`.

    python -m bench.client '{"workload": "seq", "url": "http://127.0.0.1:PORT", ...}'

Prints one JSON object on its last stdout line. Server CPU is read from /proc around the measured
section only (`pids` are the roots of the server's process trees, `db_pids` the database's), so
the client's own start-up is not charged to the server; the client's CPU is reported beside it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from bench import procfs


def make_client(url: str, connections: int = 16, read_timeout: float = 300.0) -> LangGraphClient:
    """The SDK's async client over a small connection pool.

    Concurrent workloads give each simulated client its own small pool: httpcore scans every
    pooled connection on each request, so one pool shared by 64-1,000 concurrent requests turns
    the load generator quadratic and it, not the server, becomes the bottleneck.
    """
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    http = httpx.AsyncClient(
        base_url=url,
        transport=httpx.AsyncHTTPTransport(retries=0, limits=limits, verify=False),
        timeout=httpx.Timeout(connect=30, read=read_timeout, write=read_timeout, pool=None),
    )
    return LangGraphClient(http)


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(samples: list[float]) -> dict[str, Any]:
    """Milliseconds."""
    return {
        "n": len(samples),
        "p50_ms": None if not samples else statistics.median(samples) * 1000,
        "p95_ms": None if not samples else (pct(samples, 0.95) or 0.0) * 1000,
        "mean_ms": None if not samples else statistics.fmean(samples) * 1000,
    }


class Meter:
    """Server, database and client CPU across the measured section.

    With `roles` (name -> process-tree roots) the server's CPU is also split by process, next to
    PostgreSQL's, the load generator's and the whole machine's (from /proc/stat), so a reader can
    see where the cores went.
    """

    def __init__(
        self, pids: list[int], db_pids: list[int], roles: dict[str, list[int]] | None = None
    ) -> None:
        self.pids = pids
        self.db_pids = db_pids
        self.roles = roles or {}

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Meter:
        return cls(spec["pids"], spec.get("db_pids", []), spec.get("roles"))

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.machine0 = procfs.machine_cpu_seconds()[0]
        self.roles0 = {name: procfs.cpu_seconds(pids) for name, pids in self.roles.items()}
        self.server0 = procfs.cpu_seconds(self.pids)
        self.db0 = procfs.cpu_seconds(self.db_pids) if self.db_pids else 0.0
        self.client0 = procfs.own_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.server = procfs.cpu_seconds(self.pids) - self.server0
        self.db = (procfs.cpu_seconds(self.db_pids) - self.db0) if self.db_pids else 0.0
        self.client = procfs.own_cpu_seconds() - self.client0
        self.by_role = {
            name: procfs.cpu_seconds(pids) - self.roles0[name] for name, pids in self.roles.items()
        }
        self.machine = procfs.machine_cpu_seconds()[0] - self.machine0

    def per_run(self, runs: int) -> dict[str, Any]:
        runs = max(runs, 1)
        out: dict[str, Any] = {
            "wall_s": self.wall,
            "server_cpu_ms_per_run": (self.server + self.db) * 1000 / runs,
            "db_cpu_ms_per_run": self.db * 1000 / runs,
            "client_cpu_ms_per_run": self.client * 1000 / runs,
            "server_cpu_util": (self.server + self.db) / self.wall if self.wall else None,
            "client_cpu_util": self.client / self.wall if self.wall else None,
        }
        if self.roles and self.wall:
            seconds = {**self.by_role, "PostgreSQL": self.db, "load generator": self.client}
            if not self.db_pids:
                seconds.pop("PostgreSQL")
            # whatever else ran on the machine meanwhile (other processes, the kernel)
            seconds["rest of the machine"] = max(self.machine - sum(seconds.values()), 0.0)
            out["cpu_split"] = {
                name: {"cores": cpu / self.wall, "ms_per_run": cpu * 1000 / runs}
                for name, cpu in seconds.items()
            }
            out["machine_busy_cores"] = self.machine / self.wall
        return out


async def create_and_wait(client: LangGraphClient, graph: str) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph, input={"topic": "bench"})
    if not isinstance(result, dict) or "steps" not in result:
        raise RuntimeError(f"unexpected result: {str(result)[:200]}")


async def bounded(
    step: Callable[[], Awaitable[float]], max_runs: int, max_seconds: float
) -> list[float]:
    """Run `step` sequentially until max_runs or max_seconds; returns its durations."""
    out: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(out) < max_runs and time.perf_counter() < deadline:
        out.append(await step())
    return out


async def seq(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    graph = spec.get("graph", "three")

    async def step() -> float:
        t0 = time.perf_counter()
        await create_and_wait(client, graph)
        return time.perf_counter() - t0

    await bounded(step, spec.get("warmup", 5), 5.0)
    with Meter.of(spec) as meter:
        samples = await bounded(step, spec["runs"], spec["seconds"])
    return {**summary(samples), **meter.per_run(len(samples))}


async def throughput(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    graph = spec.get("graph", "three")
    clients = int(spec["clients"])
    latencies: list[float] = []
    errors: list[str] = []
    stop = False

    pool = [make_client(spec["url"], connections=1) for _ in range(clients)]

    async def worker(client: LangGraphClient) -> None:
        while not stop:
            t0 = time.perf_counter()
            try:
                await create_and_wait(client, graph)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)
                continue
            if not stop:
                latencies.append(time.perf_counter() - t0)

    await create_and_wait(client, graph)  # warm-up (the server is warm from earlier workloads)
    tasks = [asyncio.create_task(worker(c)) for c in pool]
    with Meter.of(spec) as meter:
        await asyncio.sleep(spec["seconds"])
        stop = True
        done = len(latencies)
    # in-flight runs finish outside the measured window; their CPU is not counted either way
    drain = await asyncio.wait(tasks, timeout=float(spec.get("drain", 20.0)))
    for task in drain[1]:
        task.cancel()
    await asyncio.gather(*drain[1], return_exceptions=True)
    await asyncio.gather(*(c.aclose() for c in pool))
    return {
        "clients": clients,
        "runs": done,
        "runs_per_s": done / meter.wall,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        **summary(latencies[:done]),
        **meter.per_run(done),
    }


async def stream(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    firsts: list[float] = []
    totals: list[float] = []
    counts: list[int] = []

    async def step() -> float:
        thread = await client.threads.create()
        t0 = time.perf_counter()
        first: float | None = None
        count = 0
        async for part in client.runs.stream(
            thread["thread_id"], "stream200", input={"topic": "bench"}, stream_mode="custom"
        ):
            if part.event == "custom":
                if first is None:
                    first = time.perf_counter() - t0
                count += 1
        total = time.perf_counter() - t0
        firsts.append(first if first is not None else total)
        totals.append(total)
        counts.append(count)
        return total

    await bounded(step, 2, 5.0)
    firsts.clear()
    totals.clear()
    counts.clear()
    with Meter.of(spec) as meter:
        await bounded(step, spec["runs"], spec["seconds"])
    first = summary(firsts)
    total = summary(totals)
    return {
        "n": len(totals),
        "first_p50_ms": first["p50_ms"],
        "first_p95_ms": first["p95_ms"],
        "total_p50_ms": total["p50_ms"],
        "total_p95_ms": total["p95_ms"],
        "events_min": min(counts) if counts else None,
        **meter.per_run(len(totals)),
    }


async def interrupt(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    to_interrupt: list[float] = []

    async def step() -> float:
        thread = await client.threads.create()
        t0 = time.perf_counter()
        await client.runs.wait(thread["thread_id"], "approval", input={"topic": "bench"})
        t1 = time.perf_counter()
        result = await client.runs.wait(thread["thread_id"], "approval", command={"resume": "yes"})
        t2 = time.perf_counter()
        if not isinstance(result, dict) or result.get("answer") != "yes":
            raise RuntimeError(f"resume did not finish the graph: {str(result)[:200]}")
        to_interrupt.append(t1 - t0)
        return t2 - t1

    await bounded(step, 2, 5.0)
    to_interrupt.clear()
    with Meter.of(spec) as meter:
        samples = await bounded(step, spec["runs"], spec["seconds"])
    resume = summary(samples)
    first = summary(to_interrupt)
    return {
        "n": len(samples),
        "resume_p50_ms": resume["p50_ms"],
        "resume_p95_ms": resume["p95_ms"],
        "to_interrupt_p50_ms": first["p50_ms"],
        **meter.per_run(len(samples)),
    }


async def threads(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    """Create `count` threads, 16 at a time; write their ids to `ids_file`."""
    count = int(spec["count"])
    ids: list[str] = []
    sem = asyncio.Semaphore(16)

    async def one() -> None:
        async with sem:
            thread = await client.threads.create(metadata={"bench": True})
            ids.append(thread["thread_id"])

    with Meter.of(spec) as meter:
        await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.to_thread(Path(spec["ids_file"]).write_text, "\n".join(ids))
    return {"threads": len(ids), **meter.per_run(len(ids))}


async def concurrent_waits(client: LangGraphClient, spec: dict[str, Any]) -> dict[str, Any]:
    """One `runs.wait` of the 1-second graph on each thread of `ids_file`, all at once."""
    ids = (await asyncio.to_thread(Path(spec["ids_file"]).read_text)).split()
    errors: list[str] = []
    finished: list[float] = []
    group = 10
    pool = [make_client(spec["url"], connections=group) for _ in range(0, len(ids), group)]
    t0 = time.perf_counter()

    async def one(index: int, thread_id: str) -> None:
        try:
            await pool[index // group].runs.wait(thread_id, "sleep1", input={"topic": "bench"})
            finished.append(time.perf_counter() - t0)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    with Meter.of(spec) as meter:
        tasks = [asyncio.create_task(one(i, thread_id)) for i, thread_id in enumerate(ids)]
        _, pending = await asyncio.wait(tasks, timeout=spec["seconds"])
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(c.aclose() for c in pool))
    return {
        "runs": len(ids),
        "completed": len(finished),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "timed_out": bool(pending),
        "wall_s": max(finished) if len(finished) == len(ids) else None,
        "p50_s": statistics.median(finished) if finished else None,
        **{k: v for k, v in meter.per_run(len(finished)).items() if k != "wall_s"},
    }


WORKLOADS = {
    "seq": seq,
    "throughput": throughput,
    "stream": stream,
    "interrupt": interrupt,
    "threads": threads,
    "concurrent_waits": concurrent_waits,
}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    client = make_client(spec["url"])
    try:
        return await WORKLOADS[spec["workload"]](client, spec)
    finally:
        await client.aclose()


def child_main(run: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """A bench child process's entry point: its spec as JSON in argv[1]; `run(spec)`'s result,
    or the error it raised, as one JSON line on stdout."""
    spec = json.loads(sys.argv[1])
    result: dict[str, Any]
    try:
        result = asyncio.run(run(spec))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    print(json.dumps(result))


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    child_main(run)


if __name__ == "__main__":
    main()
