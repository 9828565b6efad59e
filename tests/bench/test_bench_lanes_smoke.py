"""`python -m bench lanes` in its smallest form, so it cannot rot. Figures are not checked (the
machine is shared): only that every phase ran and the idle trigger fired for every source."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench


@pytest.mark.timeout(120)  # ~10 s on an idle machine
def test_bench_lanes_smoke(tmp_path: Path) -> None:
    out = tmp_path / "lanes.md"
    args = ["lanes", "--runs", "3", "--backlog", "12", "--sources", "2"]
    args += ["--workdir", str(tmp_path / "work")]
    result = run_bench(args, out, timeout=110)
    assert result["idle_p50_ms"] > 0 and result["saturated_p50_ms"] > 0
    assert result["firing_delay_s"]["max"] >= 0  # both phases' trigger fired (or it raised)
    assert "| interactive p50, idle |" in out.read_text()
