"""`python -m bench sandbox-sync`: what several hosts cost (keel.sandbox.sync) on PostgreSQL.
For a workspace of 1 MiB and 10 MiB (source-like text, or random bytes that do not compress):
publish (size, tar.gz, compare-and-set upload), restore on another host (version check,
download, safe extraction, swap), and the per-operation overhead when nothing changed (the
version check before; the metadata stamp that finds no file changed after). Starts its own
PostgreSQL cluster unless `--database` is given. Writes bench/results/sandbox_sync.md and .json."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from keel.clock import iso
from keel.sandbox import workspaces
from keel.sandbox.sync import WorkspaceSync
from keel.settings.sandbox import SandboxSettings
from keel.storage.postgres import PostgresStorage

RESULTS = Path(__file__).parent / "results" / "sandbox_sync.md"
FILE_BYTES = 16 << 10


def fill(workspace: Path, total: int, kind: str, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(total // FILE_BYTES):
        if kind == "random":
            data = rng.randbytes(FILE_BYTES)
        else:  # source-like: lines of identifiers and numbers
            words = [
                f"value_{rng.randrange(5000)} = compute({rng.random():.6f})\n" for _ in range(600)
            ]
            data = "".join(words).encode()[:FILE_BYTES]
        (workspace / f"f{i:04d}.py").write_bytes(data)


async def timed(step: Callable[[], Awaitable[None]], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def case(
    a: WorkspaceSync, b: WorkspaceSync, size: int, kind: str, runs: int
) -> dict[str, float]:
    tid = str(uuid.uuid4())
    async with a.storage.tx() as tx:
        await tx.run(
            "INSERT INTO threads (thread_id, created_at, updated_at) VALUES (?,?,?)",
            [tid, iso(), iso()],
        )
    on_a = workspaces.ensure(a.root, tid)
    on_b = workspaces.ensure(b.root, tid)
    published: list[float] = []
    restored: list[float] = []
    for seed in range(runs):
        fill(on_a, size, kind, seed)  # a change, outside the timings
        start = time.perf_counter()
        await a.push(tid, on_a)
        published.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await b.pull(tid, on_b)
        restored.append((time.perf_counter() - start) * 1000)
    async with a.storage.read() as tx:
        row = await tx.get_workspace(tid)
    assert row is not None and row["version"] == runs
    return {
        "archive_bytes": len(row["archive"]),
        "publish_ms": statistics.median(published),
        "restore_ms": statistics.median(restored),
        "check_unchanged_ms": await timed(lambda: b.pull(tid, on_b), runs),
        "publish_unchanged_ms": await timed(lambda: a.push(tid, on_a), runs),
    }


async def measure(database: str, runs: int, sizes: list[int]) -> dict[str, dict[str, float]]:
    base = Path(tempfile.mkdtemp(prefix="keel-bench-sync-"))
    hosts = []
    try:
        for name in ("a", "b"):
            storage = PostgresStorage(database, pool_size=2)
            await storage.open()
            hosts.append(
                WorkspaceSync(storage, SandboxSettings(root=base / name, sync_max_bytes=64 << 20))
            )
        out = {}
        for mib in sizes:
            for kind in ("text", "random"):
                out[f"{mib} MiB {kind}"] = await case(hosts[0], hosts[1], mib << 20, kind, runs)
        return out
    finally:
        for host in hosts:
            await host.storage.close()
        shutil.rmtree(base, ignore_errors=True)


def report(result: dict[str, dict[str, float]], runs: int) -> str:
    lines = [
        "# Several hosts: workspace publish and restore (PostgreSQL)\n",
        f"Median of {runs} runs each (`python -m bench sandbox-sync`), local PostgreSQL on the "
        "shared 2-core development machine. Files of 16 KiB; *text* is source-like, *random* "
        "does not compress.\n",
        "| workspace | archive | publish (ms) | restore elsewhere (ms) | before, unchanged (ms) "
        "| after, unchanged (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['archive_bytes'] / 1024:.0f} KiB | {r['publish_ms']:.1f} | "
            f"{r['restore_ms']:.1f} | {r['check_unchanged_ms']:.2f} | "
            f"{r['publish_unchanged_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sandbox-sync")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,10", help="workspace sizes in MiB")
    parser.add_argument("--database", help="a PostgreSQL URL (default: a private cluster)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cluster = None
    database = args.database
    if database is None:
        from tests.support.postgres import PgCluster

        cluster = PgCluster(Path(tempfile.mkdtemp(prefix="keel-bench-pg-")))
        cluster.start()
        database = cluster.create_database()
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
        result = asyncio.run(measure(database, args.runs, sizes))
    finally:
        if cluster is not None:
            cluster.stop()
    text = report(result, args.runs)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0
