"""Keel against the incumbent servers, side by side, in one run.

    python -m bench                # full comparison (~13 min), updates docs/benchmarks.md
    python -m bench --quick        # about 5 minutes, for development
    python -m bench --smoke --contenders keel --out /tmp/x   # seconds; what the test runs

Every contender is started here on a free 127.0.0.1 port, loads bench/graphs.py and is driven by
the same `langgraph-sdk` async client running in a separate process (bench/client.py). Besides
the comparison table, two Keel-on-PostgreSQL sections: worker scaling (one `keel serve`, then an
API-only server with 1 and with 2 `keel worker` processes) and kill -9 of the worker executing a
run. Results go to bench/results/<mode>.md and .json.
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
from bench.contenders import CONTENDERS, ROOT, AegraServer, KeelPgServer, KeelPgW2Server, Server
from bench.graphs import LONG_STEP_SECONDS, LONG_STEPS
from tests.support.postgres import PgCluster, Unavailable
from tests.support.server import KeelWorker

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
        "scaling_seconds": 8.0,
        "scaling_clients": (16, 64),
        "worker_kill_trials": 3,
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
        "scaling_seconds": 3.0,
        "scaling_clients": (16, 64),
        "worker_kill_trials": 1,
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
        "scaling_seconds": 1.0,
        "scaling_clients": (4,),
        "worker_kill_trials": 1,
    },
}

ALL = ("keel", "keel-pg", "keel-pg-w2", "lgdev", "lgdev10", "aegra")  # the default table
CHOICES = (*ALL, "keel-pg-w1")
HIGH_CONCURRENCY = 1000
RECOVERY_KILL_AFTER = 1.25  # seconds into the 3-second `long` graph
# Worker scaling on PostgreSQL: in-process workers, then API-only + 1 and + 2 worker processes
SCALING = ("keel-pg", "keel-pg-w1", "keel-pg-w2")
SCALING_GRAPHS = ("three", "heavy")
POLL = 0.01  # seconds between reads of the runs table while a worker is killed


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
            "roles": server.roles(),
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
            if issubclass(cls, AegraServer | KeelPgServer):
                self.ensure_postgres()
                cls.postgres = self.postgres
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
            # durable settings (fast=False), so the figures on PostgreSQL are realistic;
            # Aegra and every Keel server get a database of their own in this one cluster
            self.postgres = PgCluster(self.workdir / "pg", fast=False, log=log)
            log("PostgreSQL: initdb + start")
            self.postgres.start()
            self.postgres.create_database(AegraServer.database)

    # ---- Keel on PostgreSQL: worker scaling -----------------------------------------------

    def scaling(self) -> dict[str, Any]:
        """Throughput of one `keel serve` vs API-only + 1 and + 2 `keel worker` processes.

        All three deployments are up together (separate databases of one cluster; idle Keel
        processes cost next to nothing) and measured in turn for each graph and client count, so
        drift on a shared machine hits them alike.
        """
        cfg = self.cfg
        out: dict[str, Any] = {
            "graphs": list(SCALING_GRAPHS),
            "clients": list(cfg["scaling_clients"]),
            "seconds": cfg["scaling_seconds"],
            "nproc": os.cpu_count(),
            "configs": {},
        }
        try:
            self.ensure_postgres()
        except Exception as exc:
            return {**out, "error": f"PostgreSQL: {type(exc).__name__}: {exc}"[:300]}
        servers: dict[str, Server] = {}
        try:
            for key in SCALING:
                cls = CONTENDERS[key]
                cls.postgres = self.postgres  # type: ignore[attr-defined]
                entry: dict[str, Any] = {"label": cls.label}
                out["configs"][key] = entry
                server = cls(self.workdir / f"scaling-{key}")
                try:
                    server.prepare()
                    log(f"scaling: starting {cls.label}")
                    server.start()
                    servers[key] = server
                    entry["processes"] = {k: v for k, v in server.roles().items()}
                except Exception as exc:
                    entry["error"] = f"start: {type(exc).__name__}: {exc}"[:300]
                    server.stop()
            for graph in SCALING_GRAPHS:
                for clients in cfg["scaling_clients"]:
                    for key, server in servers.items():
                        log(f"scaling: {key}, {graph}, {clients} clients")
                        out["configs"][key][f"{graph}-{clients}"] = run_client(
                            self.spec(
                                server,
                                "throughput",
                                graph=graph,
                                clients=clients,
                                seconds=cfg["scaling_seconds"],
                                drain=cfg["drain"],
                            ),
                            cfg["scaling_seconds"] + cfg["drain"] + 120,
                        )
        finally:
            for server in servers.values():
                server.stop()
        return out

    # ---- Keel on PostgreSQL: kill -9 of the worker executing a run -----------------------

    def worker_kill(self) -> dict[str, Any]:
        """API + 2 workers; kill -9 the worker running `long`; the other one takes the run over."""
        out: dict[str, Any] = {"lease_seconds": float(os.environ.get("KEEL_LEASE_SECONDS", 3))}
        try:
            self.ensure_postgres()
        except Exception as exc:
            return {**out, "error": f"PostgreSQL: {type(exc).__name__}: {exc}"[:300]}
        KeelPgW2Server.postgres = self.postgres
        server = KeelPgW2Server(self.workdir / "worker-kill")
        trials: list[dict[str, Any]] = []
        out["trials"] = trials
        try:
            server.prepare()
            log("worker kill: starting API + 2 workers")
            server.start()
            for i in range(self.cfg["worker_kill_trials"]):
                log(f"worker kill: trial {i + 1}")
                try:
                    trials.append(asyncio.run(self.worker_kill_trial(server)))
                except Exception as exc:
                    trials.append({"error": f"{type(exc).__name__}: {exc}"[:300]})
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            server.stop()
        return out

    async def worker_kill_trial(self, server: KeelPgW2Server) -> dict[str, Any]:
        import psycopg

        deadline_s = self.cfg["recovery_seconds"]
        client = make_client(server.url, read_timeout=deadline_s + 30)
        db = await psycopg.AsyncConnection.connect(server.database, autocommit=True)
        seen: dict[str, float] = {}  # what the joined stream showed, and when

        async def row(run_id: str) -> tuple[str, int, str | None]:
            cur = await db.execute(
                "SELECT status, attempt, worker_id FROM runs WHERE run_id=%s", [run_id]
            )
            got = await cur.fetchone()
            assert got is not None
            return str(got[0]), int(got[1]), got[2]

        async def watch(thread_id: str, run_id: str) -> None:
            """A client following the run through the API process (live, from now on)."""
            attempt = 1
            async for part in client.runs.join_stream(thread_id, run_id, stream_mode="values"):
                now = time.perf_counter()
                if part.event == "metadata" and isinstance(part.data, dict):
                    attempt = int(part.data.get("attempt", attempt))
                    seen.setdefault(f"metadata{attempt}", now)
                elif part.event == "values":
                    seen.setdefault(f"values{attempt}", now)

        try:
            thread = await client.threads.create()
            thread_id = thread["thread_id"]
            run = await client.runs.create(thread_id, "long", input={"topic": "bench"})
            run_id = run["run_id"]
            watcher = asyncio.create_task(watch(thread_id, run_id))
            limit = time.perf_counter() + 10
            while True:  # until a worker holds it
                status, attempt, worker_id = await row(run_id)
                if status == "running" and worker_id:
                    break
                if time.perf_counter() > limit:
                    raise RuntimeError(f"run not claimed within 10 s ({status})")
                await asyncio.sleep(POLL)
            started = time.perf_counter()
            victim_pid = int(worker_id.split(":")[1])
            victims = [w for w in server.workers if w.proc is not None and w.pid == victim_pid]
            if not victims:
                raise RuntimeError(f"run held by {worker_id}, not one of {server.worker_pids()}")
            await asyncio.sleep(max(RECOVERY_KILL_AFTER - (time.perf_counter() - started), 0))
            state = await client.threads.get_state(thread_id)
            values = state["values"]
            steps_before = len(values.get("steps", [])) if isinstance(values, dict) else 0
            victims[0].kill9()
            t_kill = time.perf_counter()
            marks: dict[str, float] = {}
            status, attempt = "running", 1
            while time.perf_counter() - t_kill < deadline_s:
                status, attempt, holder = await row(run_id)
                now = time.perf_counter() - t_kill
                if status == "pending":
                    marks.setdefault("requeued", now)
                if attempt >= 2 and status == "running":
                    marks.setdefault("claimed", now)
                    marks.setdefault("requeued", now)
                    marks.setdefault("holder", float(int(str(holder).split(":")[1])))
                if status in ("success", "error", "interrupted", "timeout"):
                    marks.setdefault("finished", now)
                    break
                await asyncio.sleep(POLL)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(watcher, 5)
            if not watcher.done():
                watcher.cancel()
            final = await client.threads.get_state(thread_id)
            fvalues = final["values"]
            steps_after = len(fvalues.get("steps", [])) if isinstance(fvalues, dict) else None
        finally:
            await client.aclose()
            await db.close()
        # bring the killed worker back for the next trial
        index = server.workers.index(victims[0])
        fresh = KeelWorker(server.config, server.workdir, server.database, env=server.env())
        fresh.start()
        server.workers[index] = fresh
        remaining = (LONG_STEPS - steps_before) * LONG_STEP_SECONDS
        finished = marks.get("finished")
        return {
            "final_status": status,
            "attempt": attempt,
            "killed_pid": victim_pid,
            "taken_over_by_pid": int(marks["holder"]) if "holder" in marks else None,
            "steps_before_kill": steps_before,
            "steps_in_state": steps_after,
            "requeued_s": marks.get("requeued"),
            "claimed_s": marks.get("claimed"),
            "first_event_s": seen["metadata2"] - t_kill if "metadata2" in seen else None,
            "first_values_s": seen["values2"] - t_kill if "values2" in seen else None,
            "finished_s": finished,
            "remaining_work_s": remaining,
            "overhead_s": finished - remaining if finished is not None else None,
        }

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


def raise_file_limit() -> None:
    """Hundreds of concurrent clients need more than the default 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))


def run_meta(mode: str, program: str, argv: list[str]) -> dict[str, Any]:
    """What every results file records about its run: mode, command line, date, machine."""
    return {
        "mode": mode,
        "command": (program + " " + shlex.join(argv)).strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }


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
    group.add_argument("--quick", action="store_true", help="short measurements (about 5 min)")
    group.add_argument("--smoke", action="store_true", help="tiny measurements (seconds)")
    parser.add_argument(
        "--contenders",
        default=",".join(ALL),
        help=f"comma-separated subset of {','.join(CHOICES)} for the table, or '' for none "
        f"(default: {','.join(ALL)})",
    )
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Keel on PostgreSQL, 1 vs 2 worker processes (default: on, except --smoke)",
    )
    parser.add_argument(
        "--worker-kill",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="kill -9 the Keel worker executing a run (default: on, except --smoke)",
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
    unknown = [k for k in keys if k not in CHOICES]
    if unknown:
        print(f"unknown contenders {unknown}; choose from {list(CHOICES)}", file=sys.stderr)
        return 2
    scaling = args.scaling if args.scaling is not None else mode != "smoke"
    worker_kill = args.worker_kill if args.worker_kill is not None else mode != "smoke"
    raise_file_limit()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": run_meta(mode, "python -m bench", argv if argv is not None else sys.argv[1:]),
        "contenders": {},
    }
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        bench = Bench(mode, Path(tmp))
        try:
            if not args.no_floor:
                results["floor"] = bench.floor()
            for key in keys:
                results["contenders"][key] = bench.contender(key, results["contenders"])
            if scaling:
                results["scaling"] = bench.scaling()
            if worker_kill:
                results["worker_kill"] = bench.worker_kill()
        finally:
            bench.close()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    results["meta"]["machine"]["load_avg_at_end"] = os.getloadavg()
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
