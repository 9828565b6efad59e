"""Workers: claim runs with a lease, execute them with LangGraph, record the outcome.

`pool` (the worker pool: claim, execute, cancel, record), `leases` (its heartbeat: renewal,
fence, reaper), `recording` (a run's writes: its event log, its terminal row)."""

from keel.worker.pool import WorkerPool

__all__ = ["WorkerPool"]
