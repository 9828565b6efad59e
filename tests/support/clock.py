"""Keel's clock (`keel.clock.now`) under a test's control, for expiry tests without sleeping."""

from __future__ import annotations

import time

import pytest

from keel import clock


class FakeClock:
    """Replaces `keel.clock.now` for this test: time stands still until `advance` moves it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = time.time()
        monkeypatch.setattr(clock, "now", self.now)

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
