"""The servers under test, each started on a free 127.0.0.1 port with the same graphs.

Keel runs from the project's own virtualenv (the one running the harness), so the benchmark
always measures the working tree. The incumbents each get a pinned virtualenv under
`bench/.envs/` (git-ignored), created on first use. Aegra and Keel on PostgreSQL share one private
PostgreSQL cluster (tests/support/postgres.py) in a temporary directory, with durable settings,
over its unix socket; each server gets a database of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import httpx

from bench import procfs
from tests.support.postgres import PgCluster, Unavailable, log_tail
from tests.support.server import KeelWorker, free_port, serve_command

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ENVS = BENCH_DIR / ".envs"
GRAPHS_FILE = BENCH_DIR / "graphs.py"
GRAPH_IDS = ("three", "twenty", "approval", "stream200", "sleep1", "long", "heavy")

LANGGRAPH_DEV_PINS = [
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
]
AEGRA_PINS = ["aegra-api==0.6.0", "greenlet==3.5.6"]


def ensure_venv(name: str, requirements: list[str], log: Any = print) -> Path:
    """A virtualenv under bench/.envs/NAME with exactly `requirements` installed; its python."""
    env_dir = ENVS / name
    python = env_dir / "bin" / "python"
    marker = env_dir / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log(f"installing {name}: {' '.join(requirements)} (first run only)")
    shutil.rmtree(env_dir, ignore_errors=True)
    ENVS.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        capture_output=True,
        text=True,
        timeout=900,
    )
    (ENVS / f"{name}.install.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "WARNING: Location" not in line]
        raise Unavailable(f"pip install failed: {' '.join(errors[-3:])[:400]}")
    marker.write_text(wanted)
    return python


def venv_versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor p in sys.argv[1:]:\n"
        "    try: out[p] = version(p)\n    except PackageNotFoundError: out[p] = 'missing'\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60
    )
    return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {}


def write_graphs(
    workdir: Path,
    config_name: str,
    extra: dict[str, Any] | None = None,
    graph_ids: tuple[str, ...] = GRAPH_IDS,
) -> Path:
    """bench/graphs.py copied into `workdir` and a config serving `graph_ids` from it."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(GRAPHS_FILE, workdir / "graphs.py")
    config = {"graphs": {g: f"./graphs.py:{g}" for g in graph_ids}, **(extra or {})}
    path = workdir / config_name
    path.write_text(json.dumps(config, indent=2))
    return path


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"exited with {proc.returncode} while starting: {log_tail(log_path)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise Unavailable(f"not healthy after {timeout:.0f}s: {log_tail(log_path)}")


class Server:
    """One contender's server: start, kill -9 (the whole process group), restart on its state."""

    key = ""
    label = ""
    health_path = "/ok"
    python: Path = Path(sys.executable)

    def __init__(self, workdir: Path, *, concurrency: int | None = None) -> None:
        self.workdir = workdir
        self.concurrency = concurrency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"
        self.boot_seconds: float | None = None

    # subclasses fill these in
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Write config files and the like before the first start."""

    def db_pids(self) -> list[int]:
        return []

    def pids(self) -> list[int]:
        """Roots of the server's process trees (CPU and RSS count their children too)."""
        return [self.proc.pid] if self.proc is not None else []

    def roles(self) -> dict[str, list[int]]:
        """Process-tree roots by role, for the per-process CPU split."""
        return {"server": self.pids()}

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_healthy(self.url + self.health_path, self.proc, self.log_path, timeout)
        self.boot_seconds = time.perf_counter() - t0

    def rss(self) -> int:
        return procfs.rss_bytes(self.pids())

    def kill9(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


class KeelServer(Server):
    key = "keel"
    label = "Keel (SQLite)"

    def prepare(self) -> None:
        self.config = write_graphs(self.workdir, "keel.json")

    def command(self) -> list[str]:
        return serve_command(self.config, self.port, f"sqlite:///{self.workdir / 'keel.db'}")

    def env(self) -> dict[str, str]:
        env = {**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": ""}
        if self.concurrency is not None:
            env["KEEL_WORKERS"] = str(self.concurrency)
        return env

    @staticmethod
    def install(log: Any = print) -> Path:
        return Path(sys.executable)

    @staticmethod
    def versions(python: Path) -> dict[str, str]:
        return venv_versions(python, ["keel-runtime", "langgraph", "langgraph-sdk", "uvicorn"])


class KeelOnDatabase(Server):
    """`keel serve` on a given database, with bench/graphs.py and default settings (subclasses
    write another config in `prepare`)."""

    key = "keel"
    label = "Keel"

    def __init__(self, workdir: Path, database: str, postgres: PgCluster | None = None) -> None:
        super().__init__(workdir)
        self.database = database
        self.postgres = postgres

    def prepare(self) -> None:
        self.config = write_graphs(self.workdir, "keel.json")

    def command(self) -> list[str]:
        return serve_command(self.config, self.port, self.database)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": ""}

    def db_pids(self) -> list[int]:
        return self.postgres.pids() if self.postgres is not None else []


class KeelPgServer(Server):
    """`keel serve` on PostgreSQL. With `worker_processes` > 0 the server is API-only
    (`--no-workers`) and that many `keel worker` processes execute the runs."""

    key = "keel-pg"
    label = "Keel (PostgreSQL)"
    worker_processes = 0
    postgres: PgCluster | None = None

    def __init__(self, workdir: Path, *, concurrency: int | None = None) -> None:
        super().__init__(workdir, concurrency=concurrency)
        self.workers: list[KeelWorker] = []
        self.database = ""

    def prepare(self) -> None:
        self.config = write_graphs(self.workdir, "keel.json")
        if self.postgres is None:
            raise Unavailable("no PostgreSQL cluster")
        # a fresh database per server; a restart after kill -9 keeps it
        name = self.postgres.create_database().rsplit("/", 1)[1]
        self.database = self.postgres.socket_url(name)

    def command(self) -> list[str]:
        extra = ["--no-workers"] if self.worker_processes else []
        return serve_command(self.config, self.port, self.database, extra)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": ""}
        if self.concurrency is not None:
            env["KEEL_WORKERS"] = str(self.concurrency)
        return env

    def start(self, timeout: float = 90.0) -> None:
        t0 = time.perf_counter()
        super().start(timeout)  # the API process applies the migrations
        self.workers = [
            KeelWorker(self.config, self.workdir, self.database, env=self.env())
            for _ in range(self.worker_processes)
        ]
        for worker in self.workers:
            worker.start(timeout)
        self.boot_seconds = time.perf_counter() - t0

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.proc is not None]

    def pids(self) -> list[int]:
        return super().pids() + self.worker_pids()

    def roles(self) -> dict[str, list[int]]:
        if not self.worker_processes:
            return {"keel serve": super().pids()}
        out = {"API (serve --no-workers)": super().pids()}
        for i, worker in enumerate(self.workers, 1):
            out[f"worker {i}"] = [worker.pid] if worker.proc is not None else []
        return out

    def db_pids(self) -> list[int]:
        return self.postgres.pids() if self.postgres is not None else []

    def kill9(self) -> None:
        """The whole deployment at once: API and worker processes."""
        for worker in self.workers:
            worker.kill9()
        super().kill9()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        super().stop()

    @staticmethod
    def install(log: Any = print) -> Path:
        return Path(sys.executable)

    @staticmethod
    def versions(python: Path) -> dict[str, str]:
        return venv_versions(
            python,
            ["keel-runtime", "langgraph", "langgraph-checkpoint-postgres", "psycopg", "uvicorn"],
        )


class KeelPgW1Server(KeelPgServer):
    key = "keel-pg-w1"
    label = "Keel (PostgreSQL): API process + 1 keel worker"
    worker_processes = 1


class KeelPgW2Server(KeelPgServer):
    key = "keel-pg-w2"
    label = "Keel (PostgreSQL): API process + 2 keel workers"
    worker_processes = 2


class LangGraphDevServer(Server):
    key = "lgdev"
    label = "langgraph dev"
    jobs: int | None = None

    def prepare(self) -> None:
        write_graphs(self.workdir, "langgraph.json", {"dependencies": ["."], "env": {}})

    def command(self) -> list[str]:
        jobs = self.concurrency if self.concurrency is not None else self.jobs
        cmd = [
            str(self.python.parent / "langgraph"),
            "dev",
            "--config",
            "langgraph.json",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-browser",
            "--no-reload",
            "--server-log-level",
            "WARNING",
        ]
        if jobs is not None:
            cmd += ["--n-jobs-per-worker", str(jobs)]
        return cmd

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "KEEL_"))}
        env.update(
            LANGGRAPH_NO_VERSION_CHECK="1",
            LANGSMITH_TRACING="false",
            LANGGRAPH_CLI_NO_ANALYTICS="1",
            PYTHONPATH="",
            PATH=f"{self.python.parent}:{env.get('PATH', '')}",
        )
        return env

    @staticmethod
    def install(log: Any = print) -> Path:
        return ensure_venv("langgraph-dev", LANGGRAPH_DEV_PINS, log)

    @staticmethod
    def versions(python: Path) -> dict[str, str]:
        return venv_versions(
            python,
            ["langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph", "uvicorn"],
        )


class LangGraphDev10Server(LangGraphDevServer):
    key = "lgdev10"
    label = "langgraph dev --n-jobs-per-worker 10"
    jobs = 10


class AegraServer(Server):
    key = "aegra"
    label = "Aegra (PostgreSQL)"
    health_path = "/health"
    database = "aegra"
    postgres: PgCluster | None = None

    def prepare(self) -> None:
        write_graphs(self.workdir, "aegra.json")
        if self.postgres is None:
            raise Unavailable("no PostgreSQL cluster")

    def command(self) -> list[str]:
        return [
            str(self.python),
            "-m",
            "uvicorn",
            "aegra_api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]

    def env(self) -> dict[str, str]:
        assert self.postgres is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "KEEL_"))}
        env.update(
            DATABASE_URL=self.postgres.socket_url(self.database),
            AEGRA_CONFIG=str(self.workdir / "aegra.json"),
            LOG_LEVEL="WARNING",
            LANGSMITH_TRACING="false",
            PYTHONPATH="",
        )
        return env

    def db_pids(self) -> list[int]:
        return self.postgres.pids() if self.postgres is not None else []

    @staticmethod
    def install(log: Any = print) -> Path:
        return ensure_venv("aegra", AEGRA_PINS, log)

    @staticmethod
    def versions(python: Path) -> dict[str, str]:
        return venv_versions(
            python, ["aegra-api", "langgraph", "langgraph-checkpoint-postgres", "uvicorn"]
        )


CONTENDERS: dict[str, type[Server]] = {
    cls.key: cls
    for cls in (
        KeelServer,
        KeelPgServer,
        KeelPgW1Server,
        KeelPgW2Server,
        LangGraphDevServer,
        LangGraphDev10Server,
        AegraServer,
    )
}
