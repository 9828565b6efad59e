"""`python -m bench sandbox` in its smallest form, so it cannot rot. Figures are not checked (the
machine is shared): only that both sides were measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sandbox_smoke(tmp_path: Path) -> None:
    out = tmp_path / "sandbox.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "sandbox", "--runs", "3", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["sandboxed_p50_ms"] > 0 and result["unsandboxed_p50_ms"] > 0
