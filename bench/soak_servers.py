"""The soak's moving parts (bench/soak.py): `keel serve` with the retention config, and a lane
(one backend under soak: its server, its load process, the records that process writes)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import procfs
from bench.client import pct
from bench.contenders import BENCH_DIR, ROOT, KeelOnDatabase
from bench.soak_db import DbReading, read_postgres, read_sqlite
from tests.support.postgres import PgCluster

# graph id -> the bench file it comes from (copied next to the server's keel.json)
GRAPH_FILES = {"chat": "chat_graph.py", "six": "graphs.py", "approval": "graphs.py"}
# log lines that count as server errors (Keel logs at `warning` during the soak)
ERROR_MARKS = ("Traceback (most recent call last)", " ERROR ", "ERROR:", "CRITICAL")


class SoakServer(KeelOnDatabase):
    """`keel serve` on one backend with the soak's graphs and the given config sections."""

    def __init__(
        self, workdir: Path, database: str, sections: dict[str, Any], postgres: PgCluster | None
    ) -> None:
        super().__init__(workdir, database, postgres)
        self.sections = sections
        self.label = "Keel (PostgreSQL)" if postgres is not None else "Keel (SQLite)"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for file in set(GRAPH_FILES.values()):
            shutil.copy(BENCH_DIR / file, self.workdir / file)
        graphs = {name: f"./{file}:{name}" for name, file in GRAPH_FILES.items()}
        self.config = self.workdir / "keel.json"
        self.config.write_text(json.dumps({"graphs": graphs, **self.sections}, indent=2))

    def error_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if any(mark in line for mark in ERROR_MARKS)]


class Lane:
    """One backend under soak: its server, its load process, and the records it writes."""

    def __init__(self, backend: str, workdir: Path, postgres: PgCluster | None) -> None:
        self.backend = backend
        self.workdir = workdir
        if backend == "sqlite":
            self.db_path: Path | None = workdir / "keel.db"
            self.database = f"sqlite:///{self.db_path}"
        else:
            assert postgres is not None
            self.db_path = None
            self.database = postgres.socket_url(postgres.create_database().rsplit("/", 1)[1])
        self.postgres = postgres
        self.records = workdir / "records.jsonl"
        self.offset = 0
        self.load: subprocess.Popen[str] | None = None
        self.summary: dict[str, Any] = {}
        self.kept: list[tuple[float, int]] = []  # (seconds since start, runs) per kept thread
        self.totals: dict[str, int] = {}
        self.server: SoakServer
        self.cpu_mark: tuple[float, dict[str, float]] = (0.0, {})

    def start_server(self, sections: dict[str, Any]) -> None:
        self.server = SoakServer(self.workdir / "server", self.database, sections, self.postgres)
        self.server.prepare()
        self.server.start()

    def start_load(self, clients: int, pace: float, seconds: float) -> None:
        spec = {"url": self.server.url, "clients": clients, "pace": pace, "seconds": seconds}
        spec["records"] = str(self.records)
        self.records.touch()
        with (self.workdir / "load.log").open("w") as log:
            self.load = subprocess.Popen(
                [sys.executable, "-m", "bench.soak_load", json.dumps(spec)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        self.cores()

    @property
    def loading(self) -> bool:
        return self.load is not None and self.load.poll() is None

    def finish_load(self) -> None:
        if self.load is None:
            return
        out, _ = self.load.communicate(timeout=60)
        lines = out.strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines else {"error": "no summary"}
        if self.load.returncode != 0:
            self.summary.setdefault("error", f"load exited {self.load.returncode}")

    def new_records(self) -> list[dict[str, Any]]:
        """Complete lines appended to the records file since the last call."""
        with self.records.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the server, the database (PostgreSQL) and the load process."""
        out = {"server": procfs.cpu_seconds(self.server.pids())}
        if self.server.db_pids():
            out["database"] = procfs.cpu_seconds(self.server.db_pids())
        if self.load is not None:
            out["load"] = procfs.cpu_seconds([self.load.pid])
        return out

    def cores(self) -> dict[str, float]:
        """Cores each part used since the last call (1.0 = one core busy)."""
        now, seconds = time.monotonic(), self.cpu()
        then, before = self.cpu_mark
        self.cpu_mark = (now, seconds)
        if not then or now <= then:
            return {}
        # a process that exited reads as 0: no figure for it
        return {
            k: round((v - before[k]) / (now - then), 3)
            for k, v in seconds.items()
            if k in before and v >= before[k]
        }

    def reading(self) -> DbReading:
        if self.db_path is not None:
            return read_sqlite(self.db_path)
        return read_postgres(self.database)

    def sample(self, t0: float, elapsed: float) -> dict[str, Any]:
        """One table row: the records since the last row, the server's RSS, the database."""
        records = self.new_records()
        waits = [float(r["ms"]) for r in records if r["op"] == "wait"]
        for r in records:
            self.totals[r["op"]] = self.totals.get(r["op"], 0) + 1
            if r["op"] == "kept":
                self.kept.append((float(r["t"]) - t0, int(r["runs"])))
        reading = self.reading()
        cores = self.cores()
        return {
            "t_s": round(elapsed, 1),
            # when the reading was done: rows counted may be from any moment in [t_s, read_s]
            "read_s": round(time.time() - t0, 2),
            "rss_mib": round(procfs.rss_bytes(self.server.pids()) / 2**20, 1),
            "db_mib": round(reading.bytes / 2**20, 2),
            **reading.rows,
            "owners": reading.owners,
            "most_per_owner": reading.most_per_owner,
            "p50_ms": round(statistics.median(waits), 1) if waits else None,
            "p95_ms": round(pct(waits, 0.95) or 0.0, 1) if waits else None,
            "waits": len(waits),
            "errors": sum(1 for r in records if r["op"] == "error"),
            "error_samples": [r["what"] for r in records if r["op"] == "error"][:3],
            "cores": cores,
            "kept_total": self.totals.get("kept", 0),
            "deleted_total": self.totals.get("deleted", 0),
        }

    def stop(self) -> None:
        if self.load is not None:
            if self.load.poll() is None:
                self.load.kill()
                self.load.wait(10)
            if self.load.stdout is not None:
                self.load.stdout.close()
        if hasattr(self, "server"):
            self.server.stop()


def wait_for(lanes: list[Lane], until: float) -> None:
    """Sleep until the epoch time `until`, or until no lane is loading any more."""
    while time.time() < until and any(lane.loading for lane in lanes):
        time.sleep(min(0.5, max(0.0, until - time.time())))
