"""`python -m bench sandbox-sync` in its smallest form (one 1 MiB round, on the suite's
PostgreSQL), so it cannot rot. Figures are not checked (the machine is shared)."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import run_bench
from tests.support.postgres import PgCluster


def test_bench_sandbox_sync_smoke(tmp_path: Path, pg_cluster: PgCluster) -> None:
    out = tmp_path / "sandbox_sync.md"
    args = [
        "sandbox-sync",
        "--runs",
        "1",
        "--sizes",
        "1",
        "--database",
        pg_cluster.create_database(),
    ]
    result = run_bench(args, out, timeout=110)
    assert set(result) == {"1 MiB text", "1 MiB random"}
    assert all(r["publish_ms"] > 0 and r["restore_ms"] > 0 for r in result.values())
