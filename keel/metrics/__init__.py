"""Prometheus metrics (`GET /metrics`, keel/http/metrics.py): what the hot paths record
(`recorder.py`), gauges read from the database at scrape time (`database.py`), the registry and
multi-process mode (`exposition.py`). See docs/operations.md."""

from keel.metrics.exposition import CONTENT_TYPE, Metrics
from keel.metrics.recorder import PromRecorder, Recorder, graph_of

__all__ = ["CONTENT_TYPE", "Metrics", "PromRecorder", "Recorder", "graph_of"]
