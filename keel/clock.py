"""Timestamps in one sortable format (ISO-8601, microseconds, UTC offset)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_FMT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


def iso(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.strftime(_FMT)


def now() -> float:
    return time.time()


def parse(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
