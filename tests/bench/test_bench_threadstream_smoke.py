"""`python -m bench threadstream` in its smallest form (Keel only), so it cannot rot. Figures
are not checked (the machine is shared): only that every transport delivered every event of
its runs and the report was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench

TRANSPORTS = ("v3 SSE", "v3 WebSocket", "runs.stream")


@pytest.mark.timeout(120)  # ~4 s on an idle machine
def test_bench_threadstream_smoke(tmp_path: Path) -> None:
    out = tmp_path / "threadstream.md"
    args = ["threadstream", "--runs", "2", "--events", "150", "--event-runs", "1", "--keel-only"]
    result = run_bench([*args, "--workdir", str(tmp_path / "work")], out, timeout=110)
    keel = result["keel"]
    for transport in TRANSPORTS:
        assert keel["latency"][transport]["first_event_p50_ms"] > 0, keel["latency"]
        assert keel["throughput"][transport]["events_per_s"] > 0, keel["throughput"]
    assert result["reference"] == {"na": "not run (--keel-only)"}
    assert "| v3 WebSocket |" in out.read_text()
