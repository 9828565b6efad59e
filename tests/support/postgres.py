"""A private PostgreSQL cluster for tests and the benchmark: no Docker, no system service.

`initdb` into a directory of ours, then `postgres` on a free 127.0.0.1 port plus a unix socket in
that directory. As root, the server runs as the `postgres` user (initdb refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.server import free_port

Log = Callable[[str], object]
SUN_PATH_MAX = 107  # a unix socket path, without its trailing NUL
# Not synchronous_commit=off: with fsync off it saves nothing, and kill -9 of PostgreSQL would
# lose commits still in its WAL buffers (shared memory), which chaos tests must not see.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


class Unavailable(RuntimeError):
    """Something we need cannot be installed or started; the message says why."""


def log_tail(path: Path, chars: int = 600) -> str:
    """The end of a log file on one line, for error messages."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace")
    return " | ".join(text[-chars:].splitlines())


def _installed_bin() -> Path | None:
    def major(path: str) -> int:
        part = path.split("/")[4]
        return int(part) if part.isdigit() else 0

    hits = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if hits:
        return Path(hits[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def find_pg_bin(log: Log = print) -> Path:
    """PostgreSQL's server binaries; installs Debian's `postgresql` when missing (root only)."""
    bin_dir = _installed_bin()
    if bin_dir is not None:
        return bin_dir
    if os.geteuid() != 0:
        raise Unavailable("PostgreSQL server binaries (initdb) not found, and apt-get needs root")
    log("installing Debian's postgresql with apt-get (first run only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)} failed: {proc.stderr[-300:]}")
    bin_dir = _installed_bin()
    if bin_dir is None:
        raise Unavailable("apt-get installed postgresql but initdb is not found")
    return bin_dir


def _postgres_home() -> Path:
    """A directory of the `postgres` user's own, right under the system's temporary directory,
    for a cluster's data and socket when we are root (the server then runs as `postgres`).

    `postgres` must be able to traverse every parent of them, which under pytest's temporary
    root does not last: each pytest session of this user that starts (another one on the same
    machine, or one a test runs) removes group and other access from /tmp/pytest-of-<user>.
    Removed when the process that made it exits.
    """
    home = Path(tempfile.mkdtemp(prefix="keel-pg-"))
    shutil.chown(home, "postgres", "postgres")
    atexit.register(_remove_home, home, os.getpid())
    return home


def _remove_home(home: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child
        shutil.rmtree(home, ignore_errors=True)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ...; None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


def _wait_gone(pids: list[int], timeout: float = 60.0) -> None:
    """Until none of `pids` is alive (zombies count as gone: orphans are reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((fields := _stat(pid)) is None or fields[0] == "Z" for pid in pids):
            return
        time.sleep(0.02)


class PgCluster:
    """One private PostgreSQL server; its log lives under `root`, its data and unix socket too,
    except as root (see `_postgres_home`).

    `fast` turns off fsync and full_page_writes: committed data survives kill -9 of PostgreSQL
    (the OS keeps the writes), not a crash of the machine. Benchmarks pass False. `settings` adds
    or overrides server settings (`-c name=value`).
    """

    def __init__(
        self,
        root: Path,
        *,
        fast: bool = True,
        max_connections: int = 300,
        settings: dict[str, str] | None = None,
        bin_dir: Path | None = None,
        log: Log = print,
    ) -> None:
        self.root = root.absolute()
        self.log_path = self.root / "postgres.log"
        self.fast = fast
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._bin = bin_dir
        self._log = log
        self._started = False
        # initdb refuses root, so as root the server and its tools run as `postgres`
        self._owner: dict[str, Any] = {}
        self.home = self.root  # data directory and socket
        if os.geteuid() == 0:
            self._owner = {"user": "postgres", "group": "postgres", "extra_groups": []}
            self.home = _postgres_home()
        self.data = self.home / "data"
        self.sock = self.home / "sock"

    @property
    def bin_dir(self) -> Path:
        if self._bin is None:
            self._bin = find_pg_bin(self._log)
        return self._bin

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def socket_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={quote(str(self.sock))}&port={self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """initdb on first use, then start the server and wait until it accepts connections."""
        if self.running:
            return
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            args = ["-D", str(self.data), "--locale=C", "-E", "UTF8", "-A", "trust"]
            self._tool("initdb", *args, "-U", "postgres", *(["--no-sync"] if self.fast else []))
        try:
            self._launch(timeout)
        except Unavailable:
            if self._started or "already in use" not in log_tail(self.log_path):
                raise
            self.port = free_port()  # lost the race for the port we picked; the first start only
            self._launch(timeout)
        self._started = True

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database (named `keel_<8 hex>` unless given); its TCP URL."""
        name = name or f"keel_{uuid.uuid4().hex[:8]}"
        self._tool("createdb", "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): open transactions roll back, then a checkpoint."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return
        self.proc.wait(10)  # a postmaster that exits has already waited for its children
        self.proc = None

    def kill9(self) -> None:
        """SIGKILL the postmaster and all its children; the next start() runs crash recovery.

        Children call setsid(), so killing the process group would miss them; the postmaster is
        stopped first so that it cannot fork while we list them.
        """
        if self.proc is None:
            return
        victims = [self.proc.pid]
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGSTOP)
            victims += _children(self.proc.pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(60)
        _wait_gone(victims)
        self.proc = None

    def restart(self, timeout: float = 60.0) -> None:
        """stop() then start() on the same port and data directory."""
        self.stop()
        self.start(timeout)

    def pids(self) -> list[int]:
        """The postmaster's pid (the root of the server's process tree), when started."""
        return [self.proc.pid] if self.proc is not None else []

    def version(self) -> str:
        proc = subprocess.run([str(self.bin_dir / "postgres"), "--version"], capture_output=True)
        return proc.stdout.decode().strip()

    # ---- internals ---------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(parents=True, exist_ok=True)
        socket_path = self.sock / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > SUN_PATH_MAX:
            raise Unavailable(f"unix socket path too long ({len(str(socket_path))}): {socket_path}")
        if self._owner:
            shutil.chown(self.sock, "postgres", "postgres")

    def _tool(self, name: str, *args: str) -> None:
        proc = subprocess.run(
            [str(self.bin_dir / name), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.home,
            **self._owner,
        )
        if proc.returncode != 0:
            raise Unavailable(f"{name} failed: {(proc.stderr or proc.stdout)[-400:]}")

    def _launch(self, timeout: float) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sock),
            "max_connections": str(self.max_connections),
            **(FAST_SETTINGS if self.fast else {}),
            **self.settings,
        }
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
                **self._owner,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise Unavailable(f"postgres exited with {code} while starting: {self._tail()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise Unavailable(f"postgres not ready after {timeout:.0f}s: {self._tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        cmd = [str(self.bin_dir / "pg_isready"), "-q", "-h", str(self.sock), "-p", str(self.port)]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def _tail(self) -> str:
        return f"{log_tail(self.log_path)} (log: {self.log_path})"
