"""Multi-process mode's files (keel/metrics/exposition.py): a process that died leaves its
counters in the shared directory (sums never go down) and loses its live gauges at the next
start of a Keel process; metrics off write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from keel.metrics.exposition import forget_dead_processes

# A process that records a run and an open SSE stream, then dies without stopping cleanly.
CHILD = """
import os
from keel.metrics import Metrics
m = Metrics.build()
m.recorder.run_created("g")
m.recorder.executing(1)
stream = m.recorder.sse_subscriber()
stream.__enter__()
print(os.getpid(), flush=True)
os._exit(0)
"""


def _record(directory: Path, enabled: bool = True) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    code = CHILD if enabled else CHILD.replace("Metrics.build()", "Metrics.off()")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return int(out.stdout)


def _summed(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_dead_process_keeps_its_counters_and_loses_its_live_gauges(tmp_path: Path) -> None:
    first, second = _record(tmp_path), _record(tmp_path)
    before = _summed(tmp_path)
    assert before["keel_runs_created_total"] == 2  # two processes' files, summed
    # The second one's start dropped the first one's live gauges (it was dead by then).
    assert not list(tmp_path.glob(f"gauge_livesum_{first}.db"))
    assert before["keel_runs_executing"] == 1
    assert before["keel_sse_subscribers"] == 1
    forget_dead_processes(str(tmp_path))
    after = _summed(tmp_path)
    assert after["keel_runs_created_total"] == 2
    assert after.get("keel_runs_executing", 0) == 0
    assert after.get("keel_sse_subscribers", 0) == 0
    assert not list(tmp_path.glob(f"gauge_livesum_{second}.db"))
    assert list(tmp_path.glob(f"counter_{first}.db"))


def test_metrics_off_write_no_files(tmp_path: Path) -> None:
    _record(tmp_path, enabled=False)
    assert list(tmp_path.iterdir()) == []
