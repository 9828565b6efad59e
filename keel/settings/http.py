"""The `http` section: a custom app, a mount prefix, surfaces turned off, CORS, request headers
copied into runs, the middleware order, the request body limit."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from keel.errors import ConfigError

# `http.disable_<surface>`: the reference's surfaces. `webhooks` turns webhook calls off
# (keel/background/outbox.py); `mcp` removes /mcp (keel/http/mcp.py); `a2a` removes /a2a/* and the
# agent cards (keel/http/a2a.py); `metrics` removes /metrics and every metric recorded
# (keel/metrics); `console` removes the web console (keel/http/console.py). Keel has no generative
# UI routes yet, so disabling those is accepted and changes nothing.
HTTP_SURFACES = (
    "assistants", "threads", "runs", "store", "meta", "webhooks", "mcp", "a2a", "ui", "metrics",
    "console",
)

MIDDLEWARE_ORDERS = ("middleware_first", "auth_first")

SUPPORTED_HTTP_KEYS = {
    "app",
    "cors",
    "mount_prefix",
    "configurable_headers",
    "middleware_order",
    "enable_custom_route_auth",
    "max_body_bytes",
    "metrics_public",
    "ws_send_queue",
    *(f"disable_{surface}" for surface in HTTP_SURFACES),
}

DEFAULT_MAX_BODY_BYTES = 10 * 2**20  # 10 MiB; the reference allows 300 MiB
DEFAULT_WS_SEND_QUEUE = 10_000  # frames one WebSocket client may have waiting for it

# Request headers never copied into a run's config, whatever `configurable_headers` says.
NEVER_COPIED_HEADERS = frozenset({"x-api-key", "x-service-key", "x-tenant-id", "authorization"})

MOUNT_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")

CORS_KEYS = {
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "allow_credentials",
    "allow_origin_regex",
    "expose_headers",
    "max_age",
}


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for header-name globs: `*` is the only wildcard; matched whole, lower-case."""
    if not patterns:
        return None
    parts = (".*".join(re.escape(piece) for piece in p.lower().split("*")) for p in patterns)
    return re.compile("|".join(f"(?:{part})" for part in parts))


@dataclasses.dataclass(frozen=True)
class HeaderRules:
    """`http.configurable_headers`: which request headers a run sees in `config.configurable`.

    None by default; a header is copied when its lower-cased name matches an `includes` glob and
    no `excludes` glob. `NEVER_COPIED_HEADERS` (credentials, tenant) are never copied."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def select(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        include, exclude = _globs(self.includes), _globs(self.excludes)
        if include is None:
            return {}
        chosen = {}
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in NEVER_COPIED_HEADERS or not include.fullmatch(name):
                continue
            if exclude is None or not exclude.fullmatch(name):
                chosen[name] = value
        return chosen


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    """The `http` section: a user app merged into the server, a mount prefix, surfaces turned
    off, CORS, and the request headers copied into runs."""

    app: str | None = None  # "./file.py:app" or "package.module:app", a Starlette/FastAPI app
    mount_prefix: str = ""  # "" or "/api": every route under it; /ok and / also at the root
    disabled: frozenset[str] = frozenset()  # surfaces of HTTP_SURFACES turned off
    cors: Mapping[str, Any] | None = None
    configurable_headers: HeaderRules = HeaderRules()
    # Whether the custom app's middleware runs before authentication (or after: auth_first).
    middleware_order: str = "middleware_first"
    enable_custom_route_auth: bool = False
    # A request body over this many bytes is refused with 413 before it is read whole.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # GET /metrics without authentication (a scraper on a private network); else, with auth on,
    # a scrape authenticates like any request.
    metrics_public: bool = False
    # Frames a thread-stream WebSocket client may have waiting (not yet taken by the socket),
    # and live events a subscription holds while it waits: past that it re-reads from the logs
    # (docs/thread-stream.md).
    ws_send_queue: int = DEFAULT_WS_SEND_QUEUE

    def enabled(self, surface: str) -> bool:
        return surface not in self.disabled


def _cors(cors: Any) -> dict[str, Any] | None:
    if cors is None:
        return None
    if not isinstance(cors, dict):
        raise ConfigError("'http.cors' must be an object")
    bad = set(cors) - CORS_KEYS
    if bad:
        raise ConfigError(f"http.cors keys not supported: {sorted(bad)}")
    return dict(cors)


def _globs_list(raw: Any, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(f"{what} must be a list of header-name patterns")
    return tuple(raw)


def _header_rules(raw: Any) -> HeaderRules:
    """`configurable_headers`: `includes` / `excludes` (or the reference's aliases `include` /
    `exclude`), lists of globs."""
    if raw is None:
        return HeaderRules()
    if not isinstance(raw, dict):
        raise ConfigError("'http.configurable_headers' must be an object")
    bad = set(raw) - {"includes", "excludes", "include", "exclude"}
    if bad:
        raise ConfigError(f"http.configurable_headers keys not supported: {sorted(bad)}")
    what = "http.configurable_headers"
    return HeaderRules(
        includes=_globs_list(raw.get("includes") or raw.get("include"), f"{what}.includes"),
        excludes=_globs_list(raw.get("excludes") or raw.get("exclude"), f"{what}.excludes"),
    )


def _mount_prefix(raw: Any) -> str:
    if raw is None:
        return ""
    prefix = raw.rstrip("/") if isinstance(raw, str) else None
    if prefix is None or not raw.startswith("/") or (prefix and not MOUNT_PREFIX.fullmatch(prefix)):
        raise ConfigError(
            f"http.mount_prefix must be a path such as '/api' or '/my-deployment/v1', got {raw!r}"
        )
    return prefix


def _flag(http: dict[str, Any], key: str) -> bool:
    value = http.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"http.{key} must be true or false, got {value!r}")
    return value


def _body_limit(raw: Any, what: str) -> int:
    return _positive(raw, what, "bytes")


def _positive(raw: Any, what: str, unit: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ConfigError(f"{what} must be a positive number of {unit}, got {raw!r}")
    return raw


def _http(raw: Any) -> HttpSettings:
    if raw is None:
        return HttpSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'http' must be an object")
    unknown = set(raw) - SUPPORTED_HTTP_KEYS
    if unknown:
        raise ConfigError(f"http keys not supported by Keel yet: {sorted(unknown)}")
    app = raw.get("app")
    if app is not None and (not isinstance(app, str) or ":" not in app):
        raise ConfigError(f"http.app must be './file.py:app' or 'package.module:app', got {app!r}")
    order = raw.get("middleware_order") or "middleware_first"
    if order not in MIDDLEWARE_ORDERS:
        raise ConfigError(f"http.middleware_order must be one of {list(MIDDLEWARE_ORDERS)}")
    return HttpSettings(
        app=app,
        mount_prefix=_mount_prefix(raw.get("mount_prefix")),
        disabled=frozenset(s for s in HTTP_SURFACES if _flag(raw, f"disable_{s}")),
        cors=_cors(raw.get("cors")),
        configurable_headers=_header_rules(raw.get("configurable_headers")),
        middleware_order=order,
        enable_custom_route_auth=_flag(raw, "enable_custom_route_auth"),
        metrics_public=_flag(raw, "metrics_public"),
        max_body_bytes=_body_limit(
            raw.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), "http.max_body_bytes"
        ),
        ws_send_queue=_positive(
            raw.get("ws_send_queue", DEFAULT_WS_SEND_QUEUE), "http.ws_send_queue", "frames"
        ),
    )
