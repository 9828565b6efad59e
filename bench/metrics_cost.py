"""The CPU cost of Prometheus metrics (keel/metrics): server CPU per run, metrics on vs off.

    python -m bench.metrics_cost [--runs 300] [--rounds 4] [--graph three|agent|...]
                                 [--scrape-every 50] [--postgres]

Starts two `keel serve` processes on SQLite (`--postgres`: each on a database of its own in a
private PostgreSQL cluster, fsync on) with the bench graphs, one with
`http.disable_metrics`, and runs the same workload on each in alternating rounds (so machine
noise falls on both alike): `--runs` stateless `/runs/wait` runs of `--graph` from 4 concurrent
clients, plus a scrape of `/metrics` every `--scrape-every` runs on the server that has it (as
Prometheus would, every 15 s or so). Prints each server's CPU seconds per run (its process tree,
from /proc) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import httpx

from bench.procfs import cpu_seconds, tree
from tests.support.postgres import PgCluster
from tests.support.server import KeelServer

GRAPHS = Path(__file__).parent / "graphs.py"
CHAT_GRAPHS = Path(__file__).parent / "chat_graph.py"  # `chat`, `agent`: they take messages
MESSAGES = {"messages": [{"role": "user", "content": "add 2 and 3"}]}
CLIENTS = 4


def _server(
    workdir: Path,
    graph: str,
    metrics: bool,
    database: str | None,
    env: dict[str, str] | None = None,
    wrapper: list[str] | None = None,
) -> KeelServer:
    """A server of the bench graphs, `metrics` on or off, with `env` added to its environment
    (and run under `wrapper`, if given)."""
    workdir.mkdir(parents=True)
    source = CHAT_GRAPHS if graph in ("chat", "agent") else GRAPHS
    shutil.copy(source, workdir / source.name)
    graphs = {graph: f"./{source.name}:{graph}"}
    config = {"graphs": graphs, "http": {"disable_metrics": not metrics}}
    (workdir / "keel.json").write_text(json.dumps(config))
    env = {"KEEL_LOG_LEVEL": "warning", **(env or {})}
    config_path = workdir / "keel.json"
    return KeelServer(config_path, workdir, database=database, env=env, wrapper=wrapper)


async def _round(srv: KeelServer, graph: str, runs: int, scrape_every: int, scrape: bool) -> float:
    """Server CPU seconds per run over `runs` runs."""
    assert srv.proc is not None
    pids = tree([srv.proc.pid])
    body = {"assistant_id": graph, "input": MESSAGES if graph in ("chat", "agent") else {}}
    async with httpx.AsyncClient(base_url=srv.url, timeout=60.0) as http:
        before = cpu_seconds(pids)
        queue = iter(range(runs))

        async def client() -> None:
            for i in queue:
                response = await http.post("/runs/wait", json=body)
                response.raise_for_status()
                if scrape and i % scrape_every == 0:
                    (await http.get("/metrics")).raise_for_status()

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return (cpu_seconds(pids) - before) / runs


async def main(runs: int, rounds: int, graph: str, scrape_every: int, postgres: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = PgCluster(Path(tmp) / "pg", fast=False) if postgres else None
        if cluster is not None:
            cluster.start()
        databases = [cluster.create_database() if cluster else None for _ in range(2)]
        on = _server(Path(tmp) / "on", graph, True, databases[0])
        off = _server(Path(tmp) / "off", graph, False, databases[1])
        on.start()
        off.start()
        try:
            for srv, scrape in ((on, True), (off, False)):  # warm up: imports, plans, caches
                await _round(srv, graph, runs // 4 or 1, scrape_every, scrape)
            cost: dict[str, list[float]] = {"on": [], "off": []}
            for i in range(rounds):
                order = [("on", on), ("off", off)] if i % 2 == 0 else [("off", off), ("on", on)]
                for name, srv in order:
                    cost[name].append(await _round(srv, graph, runs, scrape_every, name == "on"))
        finally:
            on.stop()
            off.stop()
            if cluster is not None:
                cluster.stop()
    mean = {name: sum(values) / len(values) for name, values in cost.items()}
    for name in ("off", "on"):
        rounds_ms = ", ".join(f"{v * 1e3:.2f}" for v in cost[name])
        print(f"metrics {name:<3}: {mean[name] * 1e3:6.2f} ms server CPU per run ({rounds_ms})")
    print(f"on / off: {mean['on'] / mean['off']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--graph", default="three")
    parser.add_argument("--scrape-every", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds, args.graph, args.scrape_every, args.postgres))
