"""`python -m bench mcp` in its smallest form, so it cannot rot. Figures are not checked (the
machine is shared): only that both kinds of call ran and the report was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench


@pytest.mark.timeout(120)  # ~5 s on an idle machine
def test_bench_mcp_smoke(tmp_path: Path) -> None:
    out = tmp_path / "mcp.md"
    args = ["mcp", "--runs", "3", "--workdir", str(tmp_path / "work")]
    result = run_bench(args, out, timeout=110)
    assert result["mcp_tools_call_p50_ms"] > 0 and result["runs_wait_p50_ms"] > 0
    assert "| MCP tools/call p50 |" in out.read_text()
