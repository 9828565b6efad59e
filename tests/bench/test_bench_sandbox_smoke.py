"""`python -m bench sandbox` in its smallest form, so it cannot rot. Figures are not checked (the
machine is shared): only that both sides were measured."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import run_bench


def test_bench_sandbox_smoke(tmp_path: Path) -> None:
    out = tmp_path / "sandbox.md"
    result = run_bench(["sandbox", "--runs", "3"], out, timeout=110)
    assert result["sandboxed_p50_ms"] > 0 and result["unsandboxed_p50_ms"] > 0
