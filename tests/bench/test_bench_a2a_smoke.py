"""`python -m bench a2a` in its smallest form, so it cannot rot. Figures are not checked (the
machine is shared): only that both sides ran and the report was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench


@pytest.mark.timeout(120)  # ~5 s on an idle machine
def test_bench_a2a_smoke(tmp_path: Path) -> None:
    out = tmp_path / "a2a.md"
    args = ["a2a", "--runs", "2", "--workdir", str(tmp_path / "work")]
    result = run_bench(args, out, timeout=110)
    assert result["a2a_send_p50_ms"] > 0 and result["runs_wait_p50_ms"] > 0
    assert result["a2a_sdk"] == "1.3.0"
    assert "| ratio |" in out.read_text()
