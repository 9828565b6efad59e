"""`python -m bench sizing` in its smallest form (2 runs of each workload, SQLite), so it cannot
rot. Figures are not checked beyond what holds by construction: every workload left event rows
and checkpoints, and sweeping the event logs took bytes away."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench


@pytest.mark.timeout(300)  # ~30 s on an idle machine
def test_bench_sizing_smoke(tmp_path: Path) -> None:
    out = tmp_path / "sizing.md"
    args = ["sizing", "--runs", "2", "--backends", "sqlite"]
    results = run_bench(args, out, timeout=280)["sqlite"]
    assert [r["workload"] for r in results] == ["three", "six", "chat", "approval"]
    for result in results:
        full, after = result["full"], result["after"]
        assert full["run_events"]["rows"] > 0 and full["checkpoints"]["rows"] > 0
        assert after.get("run_events", {"rows": 0})["rows"] == 0  # every event log swept
        assert result["swept"]["run_logs_swept"] == 2 * (
            2 if result["workload"] == "approval" else 1
        )
    assert "| streamed chat turn |" in out.read_text()
