"""Checks every config section shares: an object with known keys, a positive count, a number
above a minimum. Each raises a ConfigError naming the key."""

from __future__ import annotations

from typing import Any

from keel.errors import ConfigError


def section(raw: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
    """`raw` as an object, with only `allowed` keys when given."""
    if not isinstance(raw, dict):
        raise ConfigError(f"'{key}' must be an object")
    bad = sorted(set(raw) - allowed) if allowed is not None else []
    if bad:
        raise ConfigError(f"{key} keys not supported: {bad} (supported: {sorted(allowed or ())})")
    return raw


def positive_int(raw: Any, key: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {raw!r}")
    return raw


def number(raw: Any, key: str, minimum: float = 0.0) -> float:
    """A number greater than `minimum`."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not raw > minimum:
        raise ConfigError(f"{key} must be a number > {minimum:g}, got {raw!r}")
    return float(raw)
