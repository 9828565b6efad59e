"""The `auth` section of langgraph.json / keel.json."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from keel.errors import ConfigError
from keel.settings.quotas import check_quotas

KEYS = {
    "path",
    "default",
    "api_keys",
    "jwt",
    "cache",
    "quotas",
    "openapi",
    "disable_studio_auth",
}
CACHE_KEYS = {"cache_keys", "ttl_seconds", "max_size"}


@dataclasses.dataclass(frozen=True)
class AuthCache:
    """`auth.cache`: successful authentications kept per value of the named headers."""

    cache_keys: tuple[str, ...] = ("authorization", "x-api-key")
    ttl_seconds: float = 60.0
    max_size: int = 1000


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    path: str | None = None  # "./auth.py:auth": a langgraph_sdk.Auth instance
    default: str = "allow"  # "deny": an action no handler covers is refused
    api_keys: bool = False  # Keel's own API keys (`keel keys`)
    jwt: Mapping[str, Any] | None = None  # OIDC bearer tokens (parsed by keel.auth.jwt)
    cache: AuthCache | None = None
    quotas: Mapping[str, Any] | None = None  # per org and per key (keel.auth.quotas)
    openapi: Mapping[str, Any] | None = None  # security schemes shown in /openapi.json

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.builtin

    @property
    def builtin(self) -> bool:
        """Keel authenticates by itself, and organisations bound every resource."""
        return self.api_keys or self.jwt is not None


def auth_settings(raw: Any) -> AuthSettings:
    if raw is None:
        return AuthSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'auth' must be an object")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"auth: unsupported keys {unknown}; supported: {sorted(KEYS)}")
    path = raw.get("path")
    if path is not None and not isinstance(path, str):
        raise ConfigError("auth.path must be a string like './auth.py:auth'")
    default = raw.get("default", "allow")
    if default not in ("allow", "deny"):
        raise ConfigError("auth.default must be 'allow' or 'deny'")
    api_keys = raw.get("api_keys", False)
    if not isinstance(api_keys, bool):
        raise ConfigError("auth.api_keys must be true or false")
    settings = AuthSettings(
        path=path,
        default=default,
        api_keys=api_keys,
        jwt=_section(raw, "jwt"),
        cache=_cache(raw.get("cache")),
        quotas=_section(raw, "quotas"),
        openapi=_section(raw, "openapi"),
    )
    check_quotas(settings.quotas, settings.builtin)  # a bad value stops the start here
    return settings


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"auth.{key} must be an object")
    return value


def _cache(raw: Any) -> AuthCache | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - CACHE_KEYS:
        raise ConfigError(f"auth.cache must be an object with keys among {sorted(CACHE_KEYS)}")
    keys = raw.get("cache_keys", list(AuthCache.cache_keys))
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("auth.cache.cache_keys must be a list of header names")
    ttl, size = raw.get("ttl_seconds", 60), raw.get("max_size", 1000)
    if not isinstance(ttl, (int, float)) or ttl < 0 or not isinstance(size, int) or size < 1:
        raise ConfigError("auth.cache: ttl_seconds must be >= 0 and max_size >= 1")
    return AuthCache(tuple(k.lower() for k in keys), float(ttl), size)
