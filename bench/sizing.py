"""Bytes per run by workload, on SQLite and on PostgreSQL, measured with `keel db stats`.

    python -m bench sizing                 # 200 runs of each workload, both backends
    python -m bench sizing --runs 20 --backends sqlite --out /tmp/sizing.md

For each backend and workload: a fresh database and a real `keel serve`; `keel db stats --json`
before and after N runs of the workload (a new thread each, 8 clients at a time), then again
after the sweeper (run here, its clock 2 days ahead: past the default 24 h retention) removed
the runs' event logs. Bytes are each table's with its indexes (SQLite: its pages, from `dbstat`;
PostgreSQL: `pg_total_relation_size`, measured after VACUUM FULL so that they count live rows
as SQLite's do), divided by N.

    three     3 nodes in a chain (bench/graphs.py), `runs.wait`: stream mode `values`
    six       6 nodes, each appends ~120 characters, `runs.wait`
    chat      streamed chat turn: a ~24-word reply token by token and 4 custom events,
              stream modes `values`, `messages-tuple`, `custom`
    approval  an interrupt/resume pair: two runs on one thread

(`six`, `chat` and `approval` are the soak's workloads: bench/graphs.py, bench/chat_graph.py.)

Results: bench/results/sizing.md and .json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from bench.contenders import ROOT
from tests.support.postgres import PgCluster
from tests.support.server import KeelServer

BENCH = ROOT / "bench"
GRAPHS = {
    "three": f"{BENCH / 'graphs.py'}:three",
    "six": f"{BENCH / 'graphs.py'}:six",
    "chat": f"{BENCH / 'chat_graph.py'}:chat",
    "approval": f"{BENCH / 'graphs.py'}:approval",
}
CLIENTS = 8
SWEEP_AHEAD = 2 * 86400.0
LABELS = {
    "three": "3-node run",
    "six": "6-step run",
    "chat": "streamed chat turn (token by token, 4 custom events)",
    "approval": "interrupt/resume pair (2 runs)",
}
Workload = Callable[[LangGraphClient], Awaitable[None]]


async def three(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "three", input={"topic": "sizing"})


async def six(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "six", input={"topic": "sizing"})


async def chat(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    message = {"role": "human", "content": "How big is one chat turn in the database?"}
    body: Any = {"messages": [message]}
    modes: Any = ["values", "messages-tuple", "custom"]
    stream = client.runs.stream(thread["thread_id"], "chat", input=body, stream_mode=modes)
    async for _ in stream:
        pass


async def approval(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "approval", input={"topic": "sizing"})
    await client.runs.wait(thread["thread_id"], "approval", command={"resume": "yes"})


WORKLOADS: dict[str, Workload] = {"three": three, "six": six, "chat": chat, "approval": approval}


async def drive(url: str, workload: Workload, n: int) -> None:
    gate = asyncio.Semaphore(CLIENTS)
    client = get_client(url=url, api_key=None)

    async def one() -> None:
        async with gate:
            await workload(client)

    try:
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await client.aclose()


def keel(server: KeelServer, *args: str) -> str:
    cmd = [sys.executable, "-m", "keel.cli", *args]
    cmd += ["--config", str(server.config), "--database", server.database]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")
    return done.stdout


def db_stats(server: KeelServer) -> dict[str, Any]:
    """`keel db stats --json`; on PostgreSQL after VACUUM FULL, so that the tables hold their
    live rows only (between vacuums they also hold dead row versions, reused once vacuumed)."""
    if server.database.startswith("postgresql"):
        with psycopg.connect(server.database, autocommit=True) as conn:
            conn.execute("VACUUM FULL")
    stats: dict[str, Any] = json.loads(keel(server, "db", "stats", "--json"))
    return stats


async def sweep_event_logs(server: KeelServer) -> dict[str, int]:
    """The sweeper, in this process on the server's database, with its clock 2 days ahead."""
    from keel.retention.sweeps import Sweeper
    from keel.settings import load_settings
    from keel.storage import open_for_admin

    settings = load_settings(server.config, database=server.database, quiet=True)
    storage = await open_for_admin(settings)
    try:
        report = await Sweeper(storage, settings).sweep(time.time() + SWEEP_AHEAD)
    finally:
        await storage.close()
    return report.as_dict()


def measure(name: str, n: int, workdir: Path, cluster: PgCluster | None) -> Any:
    workdir.mkdir(parents=True)
    config = workdir / "keel.json"
    config.write_text(json.dumps({"graphs": GRAPHS}))
    database = cluster.create_database() if cluster else f"sqlite:///{workdir / 'keel.db'}"
    server = KeelServer(config, workdir, database=database)
    server.start()
    try:
        base = db_stats(server)
        started = time.monotonic()
        asyncio.run(drive(server.url, WORKLOADS[name], n))
        seconds = time.monotonic() - started
        full = db_stats(server)
        swept = asyncio.run(sweep_event_logs(server))
        after = db_stats(server)
    finally:
        server.stop()
    return {
        "workload": name,
        "n": n,
        "seconds": round(seconds, 1),
        "swept": swept,
        "full": per_run(base, full, n),
        "after": per_run(base, after, n),
    }


def per_run(base: dict[str, Any], now: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """Each table whose rows or bytes changed: (now - base) / n."""
    before = {t["name"]: t for t in base["tables"]}
    out = {}
    for table in now["tables"]:
        old = before.get(table["name"], {"rows": 0, "bytes": 0})
        rows, size = table["rows"] - old["rows"], table["bytes"] - old["bytes"]
        if rows or size:
            out[table["name"]] = {"rows": rows / n, "bytes": size / n}
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sizing")
    parser.add_argument("--runs", type=int, default=200, help="runs of each workload")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "sizing.md")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    results: dict[str, list[Any]] = {}
    with tempfile.TemporaryDirectory(prefix="keel-sizing-") as tmp:
        cluster = PgCluster(Path(tmp) / "pg", fast=False) if "postgres" in backends else None
        if cluster:
            cluster.start()
        try:
            for backend in backends:
                results[backend] = []
                for name in args.workloads.split(","):
                    print(f"{backend}: {n_label(args.runs, name)}", flush=True)
                    where = Path(tmp) / f"{backend}-{name}"
                    pg = cluster if backend == "postgres" else None
                    results[backend].append(measure(name, args.runs, where, pg))
        finally:
            if cluster:
                cluster.stop()
    from bench.sizing_report import render

    meta = {"date": dt.date.today().isoformat(), "runs": args.runs, "clients": CLIENTS}
    args.out.write_text(render(results, meta))
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, **results}, indent=2))
    print(args.out.read_text())
    return 0


def n_label(n: int, name: str) -> str:
    return f"{n} x {LABELS[name]}"
