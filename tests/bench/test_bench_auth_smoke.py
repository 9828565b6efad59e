"""`python -m bench auth --smoke`: the auth benchmark against Keel alone, so it cannot rot.

Figures are not checked (machines are noisy): only that every row ran or says why not, that each
measured row answered every request, and that the report was written.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # ~15 s on an idle machine
def test_bench_auth_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "auth", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "auth-smoke.json").read_text())["rows"]
    assert not any(key.startswith("lgdev") for key in rows), "the smoke run is Keel's alone"
    for key in ("keel-none", "keel-handler"):
        assert rows[key]["status"] == "ok", rows[key]
    for key, module in (("keel-api_key", "keel.auth.keys"), ("keel-jwt", "keel.auth.jwt")):
        if importlib.util.find_spec(module) is None:
            assert rows[key]["status"] == "skipped" and module in rows[key]["reason"]
        else:
            assert rows[key]["status"] == "ok", rows[key]
    for row in rows.values():
        if row["status"] == "ok":
            figures = row["figures"]
            assert figures["errors"] == 0, figures["first_error"]
            for workload in ("get", "search"):
                assert figures[workload]["server_cpu_ms_per_request"] is not None
    table = (tmp_path / "auth-smoke.md").read_text()
    assert "| Keel, no auth |" in table and "auth cost" in table
