"""The floor: the 3-node graph run in-process with `ainvoke` and Keel's checkpointer (no HTTP).

    python -m bench.floor '{"runs": 300, "seconds": 10}'

One fresh thread per run, like the server workloads. Prints one JSON object on its last line.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import procfs
from bench.client import child_main, summary
from bench.graphs import three


async def measure(graph: Any, runs: int, seconds: float) -> dict[str, Any]:
    async def one() -> float:
        t0 = time.perf_counter()
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        result = await graph.ainvoke({"topic": "bench"}, config)
        if len(result["steps"]) != 3:
            raise RuntimeError(f"unexpected result {result!r}")
        return time.perf_counter() - t0

    for _ in range(20):
        await one()
    samples: list[float] = []
    cpu0 = procfs.own_cpu_seconds()
    deadline = time.perf_counter() + seconds
    while len(samples) < runs and time.perf_counter() < deadline:
        samples.append(await one())
    cpu = procfs.own_cpu_seconds() - cpu0
    return {**summary(samples), "cpu_ms_per_run": cpu * 1000 / max(len(samples), 1)}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    from keel.storage.sqlite import SqliteStorage

    with tempfile.TemporaryDirectory() as tmp:
        storage = SqliteStorage(Path(tmp) / "floor.db")
        await storage.open()
        try:
            graph = three.copy(update={"checkpointer": storage.checkpointer})
            keel = await measure(graph, spec["runs"], spec["seconds"])
        finally:
            await storage.close()
    bare = await measure(three, spec["runs"], min(spec["seconds"], 5.0))
    return {**keel, "no_checkpointer": bare}


if __name__ == "__main__":
    child_main(run)
