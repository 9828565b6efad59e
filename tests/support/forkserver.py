"""Start `keel` processes by forking a pre-imported parent, for tests that restart them often.

`python -m keel.cli ...` spends 1-2 CPU seconds importing LangGraph before it does anything. A
chaos test that kills and restarts a process every half second would spend more CPU than a small
machine has on imports alone, so here one "zygote" process imports Keel once and forks a child per
start; the child runs `keel.cli.main(argv)` exactly as `python -m keel.cli argv` would, in its own
session, with its own environment and log file. Children are ordinary processes: kill -9 works
as on any other; they are reaped by the zygote automatically (SIGCHLD ignored), so their
liveness is read from /proc.

Protocol (one JSON object per line): request {"argv": [...], "env": {...}, "log": path},
reply {"pid": n} or {"error": text}.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = (
    "keel.cli",
    "keel.runtime",
    "keel.http.app",
    "keel.storage.postgres",
    "uvicorn",
    "uvloop",
    "langgraph.graph",
    "langgraph.checkpoint.postgres.aio",
)


# ----------------------------------------------------------------------------- the zygote
def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked child: become `keel argv` and never return."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["keel", *argv]
        from keel.cli import main

        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:  # forking a threaded process is unsafe
        raise RuntimeError(f"zygote has {threading.active_count()} threads after imports")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            out.flush()
            pid = os.fork()
            if pid == 0:
                _child(list(req["argv"]), dict(req["env"]), str(req["log"]))
            reply: dict[str, Any] = {"pid": pid}
        except Exception as exc:
            reply = {"error": repr(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


# ------------------------------------------------------------------------ the test side
def restartable_port() -> int:
    """A free TCP port below the ephemeral range, for a server restarted on the same port.

    A port from the ephemeral range (what binding port 0 gives) can be taken while its server is
    down: by any outgoing connection's source port, or by a client's connect to it that the
    kernel turns into a TCP self-connection. Then the restarted server cannot bind it.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(low - 12000, 1024), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def alive(pid: int) -> bool:
    """True until `pid` has fully exited and released its files.

    After SIGKILL the main thread can be a zombie while other threads still tear down (the open
    files, e.g. a listening socket, go with the last one), so a zombie with threads is alive.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" or threads > 1


class ForkServer:
    """The zygote: `spawn` forks a child running `keel argv`; `close` ends the zygote only."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        ready = self._read()
        if "ready" not in ready:
            raise RuntimeError(f"fork server did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited with {self.proc.wait(5)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n")
            self.proc.stdin.flush()
            reply = self._read()
        if "pid" not in reply:
            raise RuntimeError(f"fork failed: {reply}")
        return int(reply["pid"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ForkedKeel:
    """One Keel process (API server or worker) started through a ForkServer, restartable.

    `start` returns once it is ready: an API server answers /ok, a worker printed its id.
    """

    def __init__(
        self,
        name: str,
        forks: ForkServer,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        url: str | None = None,
    ) -> None:
        self.name = name
        self.forks = forks
        self.argv = argv
        self.env = env
        self.log_dir = log_dir
        self.url = url  # API servers only
        self.pid: int | None = None
        self.incarnation = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.incarnation}.log"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def spawn(self) -> int:
        self.incarnation += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pid = self.forks.spawn(self.argv, self.env, self.log_path)
        return self.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.pid is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(self.pid):
                raise RuntimeError(f"{self.name} (pid {self.pid}) exited:\n{self.logs()}")
            if self.url is None:
                if "Keel worker" in self.logs():
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + "/ok", timeout=1.0).status_code == 200:
                        return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.logs()}")

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def kill9(self) -> None:
        """SIGKILL, and return once the process is gone."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while alive(self.pid):
            time.sleep(0.002)
        self.pid = None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.kill9()


if __name__ == "__main__":
    _serve()
