"""Timestamps in one sortable format (ISO-8601, microseconds, UTC offset)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float | None = None) -> str:
    """`ts` (default: `now()`, so a test's fake clock governs it too) in Keel's format."""
    moment = datetime.fromtimestamp(now() if ts is None else ts, UTC)
    return moment.isoformat(timespec="microseconds")


def now() -> float:
    return time.time()


def parse(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
