"""Keel against the incumbent servers, side by side, in one run.

    python -m bench                # full comparison (~15 min), updates docs/benchmarks.md
    python -m bench --quick        # under 3 minutes, for development
    python -m bench --smoke --contenders keel --out /tmp/x   # seconds; what the test runs

Every contender is started here on a free 127.0.0.1 port, loads bench/graphs.py and is driven by
the same `langgraph-sdk` async client running in a separate process (bench/client.py). Results go
to bench/results/<mode>.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import procfs, report
from bench.client import make_client
from bench.contenders import CONTENDERS, ROOT, AegraServer, Server
from tests.support.postgres import PgCluster, Unavailable

MODES: dict[str, dict[str, Any]] = {
    "full": {
        "seq": (300, 15.0),
        "twenty": (100, 6.0),
        "stream": (40, 6.0),
        "interrupt": (60, 6.0),
        "throughput_seconds": 10.0,
        "clients": (16, 64),
        "drain": 20.0,
        "threads": 1000,
        "waits": 1000,
        "waits_seconds": 60.0,
        "recovery_seconds": 60.0,
        "floor": (1000, 5.0),
    },
    "quick": {
        "seq": (100, 3.0),
        "twenty": (30, 2.0),
        "stream": (10, 2.0),
        "interrupt": (15, 2.0),
        "throughput_seconds": 3.0,
        "clients": (16, 64),
        "drain": 5.0,
        "threads": 1000,
        "waits": 1000,
        "waits_seconds": 20.0,
        "recovery_seconds": 15.0,
        "floor": (300, 2.0),
    },
    "smoke": {
        "seq": (10, 1.0),
        "twenty": (3, 1.0),
        "stream": (2, 1.0),
        "interrupt": (2, 1.0),
        "throughput_seconds": 0.5,
        "clients": (4,),
        "drain": 5.0,
        "threads": 20,
        "waits": 20,
        "waits_seconds": 10.0,
        "recovery_seconds": 15.0,
        "floor": (20, 1.0),
    },
}

ALL = ("keel", "lgdev", "lgdev10", "aegra")
HIGH_CONCURRENCY = 1000
RECOVERY_KILL_AFTER = 1.25  # seconds into the 3-second `long` graph


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_client(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One workload in a separate load-generator process."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.client", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"load generator exited {proc.returncode}: {proc.stderr[-400:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class PeakSampler:
    """Samples the RSS of the server's process tree in a thread; keeps the maximum."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, procfs.rss_bytes(self.pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mib(n: int) -> float:
    return n / 2**20


class Bench:
    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.cfg = MODES[mode]
        self.workdir = workdir
        self.postgres: PgCluster | None = None

    # ---- one server's figures -------------------------------------------------------------

    def spec(self, server: Server, workload: str, **extra: Any) -> dict[str, Any]:
        return {
            "workload": workload,
            "url": server.url,
            "pids": server.pids(),
            "db_pids": server.db_pids(),
            **extra,
        }

    def phase_a(self, server: Server) -> dict[str, Any]:
        """Latency, CPU, streaming, interrupts, throughput on a server with default settings."""
        cfg = self.cfg
        out: dict[str, Any] = {"boot_s": server.boot_seconds}
        out["rss_boot_mib"] = mib(server.rss())
        runs, seconds = cfg["seq"]
        log(f"  {server.key}: sequential create+wait, 3 nodes")
        out["seq3"] = run_client(
            self.spec(server, "seq", graph="three", runs=runs, seconds=seconds, warmup=5),
            seconds + 120,
        )
        runs, seconds = cfg["twenty"]
        log(f"  {server.key}: sequential create+wait, 20 nodes")
        out["seq20"] = run_client(
            self.spec(server, "seq", graph="twenty", runs=runs, seconds=seconds, warmup=2),
            seconds + 120,
        )
        runs, seconds = cfg["stream"]
        log(f"  {server.key}: stream of 200 custom events")
        out["stream"] = run_client(
            self.spec(server, "stream", runs=runs, seconds=seconds), seconds + 120
        )
        runs, seconds = cfg["interrupt"]
        log(f"  {server.key}: interrupt -> resume")
        out["interrupt"] = run_client(
            self.spec(server, "interrupt", runs=runs, seconds=seconds), seconds + 120
        )
        for clients in cfg["clients"]:
            log(f"  {server.key}: throughput, {clients} clients, {cfg['throughput_seconds']}s")
            out[f"tp{clients}"] = run_client(
                self.spec(
                    server,
                    "throughput",
                    clients=clients,
                    seconds=cfg["throughput_seconds"],
                    drain=cfg["drain"],
                ),
                cfg["throughput_seconds"] + cfg["drain"] + 120,
            )
        return out

    def phase_b(self, server: Server) -> dict[str, Any]:
        """Fresh server, concurrency limit raised: 1,000 threads, 1,000 waiting runs, kill -9."""
        cfg = self.cfg
        out: dict[str, Any] = {"boot_s": server.boot_seconds, "rss_boot_mib": mib(server.rss())}
        ids_file = server.workdir / "thread_ids.txt"
        log(f"  {server.key}: create {cfg['threads']} threads")
        out["threads"] = run_client(
            self.spec(server, "threads", count=cfg["threads"], ids_file=str(ids_file)), 300
        )
        time.sleep(0.5)
        out["rss_threads_mib"] = mib(server.rss())
        if server.db_pids():
            out["db_pss_threads_mib"] = mib(procfs.pss_bytes(server.db_pids()))
        if "error" not in out["threads"]:
            log(f"  {server.key}: {cfg['waits']} concurrent 1-second runs")
            with PeakSampler(server.pids()) as sampler:
                out["waits"] = run_client(
                    self.spec(
                        server,
                        "concurrent_waits",
                        ids_file=str(ids_file),
                        seconds=cfg["waits_seconds"],
                    ),
                    cfg["waits_seconds"] + 120,
                )
            out["rss_peak_mib"] = mib(sampler.peak)
        log(f"  {server.key}: kill -9 mid-run, restart, wait for the run")
        try:
            out["recovery"] = asyncio.run(self.recovery(server))
        except Exception as exc:
            out["recovery"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return out

    async def recovery(self, server: Server) -> dict[str, Any]:
        client = make_client(server.url, read_timeout=30)
        try:
            thread = await client.threads.create()
            run = await client.runs.create(thread["thread_id"], "long", input={"topic": "bench"})
            await asyncio.sleep(RECOVERY_KILL_AFTER)
            before = await client.runs.get(thread["thread_id"], run["run_id"])
        finally:
            await client.aclose()
        server.kill9()
        t_kill = time.perf_counter()
        await asyncio.to_thread(server.start)
        restarted = time.perf_counter() - t_kill
        deadline = t_kill + self.cfg["recovery_seconds"]
        client = make_client(server.url, read_timeout=30)
        status = "unknown"
        try:
            while time.perf_counter() < deadline:
                try:
                    got = await client.runs.get(thread["thread_id"], run["run_id"])
                    status = got["status"]
                except Exception as exc:
                    if type(exc).__name__ == "NotFoundError" or "404" in str(exc):
                        status = "lost: the server forgot the thread"
                        break
                    status = f"unreachable ({type(exc).__name__})"
                if status in ("success", "error", "interrupted", "timeout"):
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t_kill
            steps: int | None = None
            if status == "success":
                state = await client.threads.get_state(thread["thread_id"])
                values = state["values"]
                steps = len(values.get("steps", [])) if isinstance(values, dict) else None
        finally:
            await client.aclose()
        ok = status == "success"
        return {
            "status_before_kill": before["status"],
            "final_status": status,
            "recovered": ok,
            "seconds": elapsed if ok else None,
            "restart_s": restarted,
            "steps_in_state": steps,
            "waited_s": self.cfg["recovery_seconds"],
        }

    # ---- contenders -----------------------------------------------------------------------

    def contender(self, key: str, results: dict[str, Any]) -> dict[str, Any]:
        cls = CONTENDERS[key]
        entry: dict[str, Any] = {"label": cls.label, "status": "ok"}
        try:
            python = cls.install(log)  # type: ignore[attr-defined]
            cls.python = python
            entry["versions"] = cls.versions(python)  # type: ignore[attr-defined]
            if cls is AegraServer:
                self.ensure_postgres()
                AegraServer.postgres = self.postgres
                if self.postgres is not None:
                    entry["versions"]["postgresql"] = self.postgres.version()
        except Unavailable as exc:
            return {**entry, "status": "failed", "reason": f"install: {exc}"}
        except Exception as exc:
            return {**entry, "status": "failed", "reason": f"install: {type(exc).__name__}: {exc}"}

        entry["figures"] = {}
        # phase A: default settings
        server = cls(self.workdir / f"{key}-a")
        try:
            server.prepare()
            log(f"{cls.label}: starting")
            server.start()
            entry["figures"].update(self.phase_a(server))
        except Unavailable as exc:
            return {**entry, "status": "failed", "reason": f"start: {exc}"}
        except Exception as exc:
            entry["figures"]["phase_a_error"] = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            server.stop()
        # phase B: concurrency raised; shared by both langgraph dev columns (same server then)
        if key == "lgdev10" and "lgdev" in results and "phase_b" in results["lgdev"]:
            entry["phase_b"] = results["lgdev"]["phase_b"]
            entry["phase_b_shared_with"] = "lgdev"
            return entry
        server = cls(self.workdir / f"{key}-b", concurrency=HIGH_CONCURRENCY)
        try:
            server.prepare()
            server.start()
            entry["phase_b"] = self.phase_b(server)
        except Exception as exc:
            entry["phase_b"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            server.stop()
        return entry

    def ensure_postgres(self) -> None:
        if self.postgres is None:
            # durable settings (fast=False), so Aegra's figures are realistic
            self.postgres = PgCluster(self.workdir / "pg", fast=False, log=log)
            log("PostgreSQL: initdb + start")
            self.postgres.start()
            self.postgres.create_database(AegraServer.database)

    def floor(self) -> dict[str, Any]:
        runs, seconds = self.cfg["floor"]
        log("floor: in-process ainvoke with Keel's checkpointer")
        return run_client_module("bench.floor", {"runs": runs, "seconds": seconds}, seconds + 60)

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()


def run_client_module(module: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", module, json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"{module} exited {proc.returncode}: {proc.stderr[-400:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(int(meminfo[1]) / 2**20, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="short measurements (< 3 min)")
    group.add_argument("--smoke", action="store_true", help="tiny measurements (seconds)")
    parser.add_argument(
        "--contenders",
        default=",".join(ALL),
        help=f"comma-separated subset of {','.join(ALL)} (default: all)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the in-process floor")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--update-docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the table into docs/benchmarks.md (default: only for the full mode)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    keys = [k.strip() for k in args.contenders.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ALL]
    if unknown:
        print(f"unknown contenders {unknown}; choose from {list(ALL)}", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    command = "python -m bench" + (" " + shlex.join(argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "mode": mode,
            "command": command.strip(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
        },
        "contenders": {},
    }
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        bench = Bench(mode, Path(tmp))
        try:
            if not args.no_floor:
                results["floor"] = bench.floor()
            for key in keys:
                results["contenders"][key] = bench.contender(key, results["contenders"])
        finally:
            bench.close()
    results["contenders"]["keel-pg"] = {
        "label": "Keel (PostgreSQL)",
        "status": "not yet implemented",
        "reason": "Keel's PostgreSQL backend does not exist yet",
    }
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = report.render(results)
    (args.out / f"{mode}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (args.out / f"{mode}.md").write_text(markdown)
    update_docs = args.update_docs if args.update_docs is not None else mode == "full"
    if update_docs:
        report.update_docs(ROOT / "docs" / "benchmarks.md", markdown)
    print(markdown)
    log(f"done in {results['meta']['seconds']} s; wrote {args.out / mode}.md and .json")
    return 0
