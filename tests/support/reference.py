"""The reference server (`langgraph dev`, installed by the benchmark under bench/.envs/) serving
the same test graphs, so a test's expectations can be checked once against it.

`KEEL_TEST_REFERENCE=1 pytest tests/e2e/test_x.py` runs the e2e tests of a module against the
reference instead of Keel (see tests/conftest.py). It is a development aid, not part of CI: the
reference is source-available only and is installed by `python -m bench`, not by scripts/test.
Graphs whose files import packages the reference environment lacks (langchain and deepagents
for tests/graphs/agents.py: the benchmark does not install them) are left out of its config;
`KEEL_TEST_REFERENCE_ENV=<venv>` names another environment, with the same pins as
bench/contenders.py plus those packages, to check their tests too.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_ENV = ROOT / "bench" / ".envs" / "langgraph-dev"


def reference_env() -> Path:
    return Path(os.environ.get("KEEL_TEST_REFERENCE_ENV") or REFERENCE_ENV)


def reference_requested() -> bool:
    return os.environ.get("KEEL_TEST_REFERENCE", "") not in ("", "0")


def imported_packages(file: Path) -> set[str]:
    """Top-level packages a graph file imports when loaded (module-level absolute imports;
    imports inside functions are left to the run that needs them)."""
    found: set[str] = set()
    for node in ast.parse(file.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def missing_modules(files: set[Path]) -> set[str]:
    """The packages the graph files import that the reference environment cannot find (the
    repository and the files' folders count: the server has them on its path)."""
    wanted = sorted(set().union(*(imported_packages(f) for f in files)) - {"__future__"})
    code = "import importlib.util as u, sys\n"
    code += "print(' '.join(m for m in sys.argv[1:] if not u.find_spec(m)))"
    path = os.pathsep.join([str(ROOT), *sorted({str(f.parent) for f in files})])
    python = reference_env() / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", code, *wanted],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": path, "PATH": os.environ.get("PATH", "")},
        check=True,
    )
    return set(out.stdout.split())


class ReferenceServer:
    """`langgraph dev` on a free port with the graphs of a keel.json (same ids, same files)."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.source = config.resolve()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "reference.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_env = env or {}

    def _write_config(self) -> Path:
        data = json.loads(self.source.read_text())
        base = self.source.parent
        graphs = {}
        for graph_id, spec in data.get("graphs", {}).items():
            path = spec if isinstance(spec, str) else spec["path"]
            file, _, attr = path.rpartition(":")
            graphs[graph_id] = (base / file).resolve(), attr
        missing = missing_modules({file for file, _ in graphs.values()})
        usable = {
            graph_id: f"{file}:{attr}"
            for graph_id, (file, attr) in graphs.items()
            if not missing & imported_packages(file)
        }
        if missing:
            with self.log_path.open("a") as log:
                left_out = sorted(set(graphs) - set(usable))
                log.write(f"reference env lacks {sorted(missing)}: left out {left_out}\n")
        config = {**data, "graphs": usable, "dependencies": [str(ROOT)]}
        if isinstance(data.get("env"), str):
            config["env"] = str((base / data["env"]).resolve())
        path = self.workdir / "langgraph.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 120.0) -> None:
        binary = reference_env() / "bin" / "langgraph"
        if not binary.exists():
            raise RuntimeError(f"{binary} missing: `python -m bench --quick` installs it")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "KEEL_"))}
        env.update(
            LANGGRAPH_NO_VERSION_CHECK="1",
            LANGSMITH_TRACING="false",
            LANGGRAPH_CLI_NO_ANALYTICS="1",
            PYTHONPATH=str(ROOT),
            PATH=f"{binary.parent}:{env.get('PATH', '')}",
        )
        env.update(self.extra_env)  # may replace the above (PYTHONPATH)
        cmd = [str(binary), "dev", "--config", str(config), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--no-browser", "--no-reload"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/ok", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"langgraph dev not healthy in {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
