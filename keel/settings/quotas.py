"""The `auth.quotas` section: limits per organisation and per API key (enforced by
keel.auth.quotas)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from keel.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """Requests per second, and how many may come at once after a quiet time."""

    per_second: float
    burst: int


SECTIONS = {"default", "orgs", "key_default", "keys"}

LIMITS = ("requests_per_second", "burst", "concurrent_runs", "runs_per_day")


@dataclasses.dataclass(frozen=True)
class Limits:
    rate: RateLimit | None = None
    concurrent_runs: int | None = None
    runs_per_day: int | None = None

    @property
    def limits_runs(self) -> bool:
        return self.concurrent_runs is not None or self.runs_per_day is not None


@dataclasses.dataclass(frozen=True)
class QuotaConfig:
    org_default: Limits
    orgs: Mapping[str, Limits]
    key_default: Limits
    keys: Mapping[str, Limits]

    def for_org(self, org: str | None) -> Limits:
        return self.org_default if org is None else self.orgs.get(org, self.org_default)

    def for_key(self, key: str) -> Limits:
        return self.keys.get(key, self.key_default)


def parse_quotas(raw: Mapping[str, Any]) -> QuotaConfig:
    """`auth.quotas` as limits; ConfigError naming the first bad value."""
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise ConfigError(f"auth.quotas: unsupported keys {unknown}; supported: {sorted(SECTIONS)}")
    default = _object(raw.get("default"), "auth.quotas.default")
    key_default = _object(raw.get("key_default"), "auth.quotas.key_default")
    return QuotaConfig(
        org_default=_limits(default, default, "auth.quotas.default"),
        orgs=_overrides(raw.get("orgs"), default, "auth.quotas.orgs"),
        key_default=_limits(key_default, key_default, "auth.quotas.key_default"),
        keys=_overrides(raw.get("keys"), key_default, "auth.quotas.keys"),
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    return value


def _overrides(value: Any, base: dict[str, Any], where: str) -> dict[str, Limits]:
    out = {}
    for name, own in _object(value, where).items():
        own = _object(own, f"{where}.{name}")
        out[name] = _limits({**base, **own}, own, f"{where}.{name}")
    return out


def _limits(merged: dict[str, Any], own: dict[str, Any], where: str) -> Limits:
    unknown = sorted(set(own) - set(LIMITS))
    if unknown:
        raise ConfigError(f"{where}: unsupported keys {unknown}; supported: {list(LIMITS)}")
    rps = merged.get("requests_per_second")
    if rps is not None and (
        isinstance(rps, bool) or not isinstance(rps, (int, float)) or not 0 < rps < math.inf
    ):
        raise ConfigError(f"{where}.requests_per_second must be a number > 0 (or null)")
    burst = _count(merged, "burst", 1, where)
    if burst is not None and rps is None and "requests_per_second" not in own:
        raise ConfigError(f"{where}.burst needs requests_per_second")
    rate = None
    if rps is not None:
        rate = RateLimit(float(rps), burst if burst is not None else max(1, math.ceil(rps)))
    return Limits(
        rate,
        _count(merged, "concurrent_runs", 0, where),
        _count(merged, "runs_per_day", 0, where),
    )


def _count(raw: dict[str, Any], key: str, minimum: int, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key} must be an integer >= {minimum} (or null)")
    return value


def check_quotas(raw: Mapping[str, Any] | None, builtin: bool) -> QuotaConfig | None:
    """`auth.quotas` parsed (None: none); ConfigError when it cannot be honoured (`builtin`:
    whether built-in auth, and so organisations, is on)."""
    if raw is None:
        return None
    if not builtin:
        raise ConfigError(
            "auth.quotas needs organisations: turn on built-in auth (auth.api_keys or auth.jwt)"
        )
    return parse_quotas(raw)
