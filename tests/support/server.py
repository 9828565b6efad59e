"""A real `keel serve` process on a free 127.0.0.1 port, for end-to-end and chaos tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(
    config: Path, port: int, database: str, extra_args: list[str] | None = None
) -> list[str]:
    """`keel serve` with this interpreter, on 127.0.0.1:port."""
    return [
        sys.executable,
        "-m",
        "keel.cli",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--database",
        database,
        *(extra_args or []),
    ]


class _Process:
    """A child process with a log file: read its log, kill it with SIGKILL."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(60)
        self.proc = None


class KeelServer(_Process):
    """Starts, kills (-9) and restarts one Keel server process."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        database: str | None = None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        """`wrapper`: a command the server runs under (valgrind, for bench.tracing_instructions)."""
        self.config = config
        self.workdir = workdir
        self.database = database or f"sqlite:///{workdir / 'keel.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "KEEL_LOG_LEVEL": "warning", **(env or {})}
        self.extra_args = extra_args or []
        self.wrapper = wrapper or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = serve_command(self.config, self.port, self.database, self.extra_args)
        cmd = [*self.wrapper, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/ok", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"keel did not become healthy in {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class KeelWorker(_Process):
    """A `keel worker` process (no HTTP): ready once it prints its worker id."""

    def __init__(
        self, config: Path, workdir: Path, database: str, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.database = database
        self.env = {**os.environ, "KEEL_LOG_LEVEL": "warning", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"worker-{free_port()}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "keel.cli", "worker", "--config", str(self.config)]
        cmd += ["--database", self.database]
        # The log is appended to across restarts: only this process's output counts.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel worker exited {self.proc.returncode}:\n{self.logs()}")
            if b"Keel worker" in self.log_path.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        raise RuntimeError(f"keel worker did not start in {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(5)
        self.proc = None
        return code
