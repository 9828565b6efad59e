"""Timestamps in one sortable format (ISO-8601, microseconds, UTC offset)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="microseconds")


def now() -> float:
    return time.time()


def parse(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
