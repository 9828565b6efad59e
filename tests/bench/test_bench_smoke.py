"""The benchmark harness in its smallest mode, against Keel alone, so it cannot rot.

Figures are not checked (machines are noisy): only that every workload ran and produced numbers,
and that the report and JSON were written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(360)  # ~30 s on an idle machine
def test_bench_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--contenders",
            "keel",
            "--out",
            str(tmp_path),
            "--no-update-docs",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    keel = results["contenders"]["keel"]
    assert keel["status"] == "ok", keel
    figures, phase_b = keel["figures"], keel["phase_b"]
    for name in ("seq3", "seq20", "stream", "interrupt", "tp4"):
        assert "error" not in figures[name], (name, figures[name])
    assert figures["seq3"]["n"] >= 1 and figures["seq3"]["p50_ms"] > 0
    assert figures["stream"]["events_min"] == 200
    # How many runs fit in tp4's half-second window depends on the machine: not checked.
    assert figures["tp4"]["runs"] >= 0 and figures["tp4"]["errors"] == 0
    assert phase_b["threads"]["threads"] == 20
    assert phase_b["waits"]["completed"] == 20, phase_b["waits"]
    assert phase_b["recovery"]["recovered"] is True, phase_b["recovery"]
    assert set(results["contenders"]) == {"keel"}, "the smoke run measures Keel on SQLite only"
    assert "error" not in results["floor"], results["floor"]
    table = (tmp_path / "smoke.md").read_text()
    assert "| Keel (SQLite) |" in table
    assert "create thread + runs.wait p50" in table


@pytest.mark.timeout(360)  # ~20 s on an idle machine
def test_bench_store_smoke(tmp_path: Path) -> None:
    """`python -m bench store --smoke`: 500 items, Keel on SQLite in-process and over HTTP."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "store", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KEEL_BENCH_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "store-smoke.json").read_text())
    assert results["corpus"]["items"] == 500
    assert set(results["keel"]) == {"sqlite"} and "incumbent" not in results
    keel = results["keel"]["sqlite"]
    assert "error" not in keel, keel
    inproc, search, put = keel["inproc"], keel["http_search"], keel["http_put"]
    for part in (inproc, search, put):
        assert "error" not in part, part
    assert inproc["put"]["items"] == 500 and inproc["put"]["items_per_s"] > 0
    for scope in ("all", "user"):
        assert inproc["search"][scope]["n"] == 20 and inproc["search"][scope]["p50_ms"] > 0
        assert search[scope]["n"] == 20 and search[scope]["p50_ms"] > 0
        # Keel searches exactly; anything far below 1.0 means the wrong items came back
        assert inproc["recall"][scope] >= 0.9, inproc["recall"]
        assert search["recall"][scope] >= 0.9, search["recall"]
    assert search["errors"] == 0, search["first_error"]
    assert put["items"] == 50 and put["errors"] == 0 and put["items_per_s"] > 0, put
    assert inproc["cold_search_ms"] > 0 and search["cold_search_ms"] > 0
    assert keel["rss_loaded_mib"] > 0
    table = (tmp_path / "store-smoke.md").read_text()
    assert "| Keel (SQLite) |" in table
    assert "recall@10 against exact search, all users, in-process" in table
