"""Runs `python -m bench ...` as the smoke tests do: in a child process from the project root,
failing with the end of its stderr; returns the JSON results written beside `out`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(args: list[str], out: Path, timeout: float) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.with_suffix(".json").read_text())
