"""One typed Settings object, loaded at the edge (CLI, tests) and passed down."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from keel.auth.config import AuthSettings, auth_settings
from keel.errors import ConfigError

log = logging.getLogger("keel.settings")

# Keys of langgraph.json that Keel honours.
SUPPORTED_KEYS = {"graphs", "dependencies", "env", "http", "store", "auth"}
# Editor metadata (the JSON schema of langgraph.json): accepted without a word.
SILENT_KEYS = {"$schema"}
# Build/Docker concerns: harmless to ignore, so a warning names them.
IGNORED_KEYS = {
    "python_version",
    "node_version",
    "pip_config_file",
    "pip_installer",
    "dockerfile_lines",
    "base_image",
    "image_distro",
    "api_version",
    "keep_pkg_tools",
    "source",
}
# `http.disable_<surface>`: the reference's surfaces. Keel has no webhooks, MCP, A2A or generative
# UI routes yet, so disabling those is accepted and changes nothing.
HTTP_SURFACES = ("assistants", "threads", "runs", "store", "meta", "webhooks", "mcp", "a2a", "ui")
MIDDLEWARE_ORDERS = ("middleware_first", "auth_first")
SUPPORTED_HTTP_KEYS = {
    "app",
    "cors",
    "mount_prefix",
    "configurable_headers",
    "middleware_order",
    "enable_custom_route_auth",
    "max_body_bytes",
    *(f"disable_{surface}" for surface in HTTP_SURFACES),
}
DEFAULT_MAX_BODY_BYTES = 10 * 2**20  # 10 MiB; the reference allows 300 MiB
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
SQLITE_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    path: str
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    """`store.index`: what semantic search embeds. `embed` None is Keel's embedded model."""

    dims: int = 256
    embed: str | None = None
    fields: tuple[str, ...] = ("$",)


@dataclasses.dataclass(frozen=True)
class TTLSettings:
    """`store.ttl`: minutes; `default_ttl` None keeps items until deleted."""

    default_ttl: float | None = None
    refresh_on_read: bool = True
    sweep_interval_minutes: float = 60.0


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """`store`: semantic search on by default (embedded model); `index` None turns it off."""

    index: IndexSettings | None = IndexSettings()
    ttl: TTLSettings = TTLSettings()


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

    def enabled(self, surface: str) -> bool:
        return surface not in self.disabled


@dataclasses.dataclass
class Settings:
    """Everything a Keel process needs to know. Built by `load_settings` or directly in tests."""

    graphs: list[GraphSpec] = dataclasses.field(default_factory=list)
    base_dir: Path = dataclasses.field(default_factory=Path.cwd)
    database: str = "sqlite:///.keel/keel.db"
    host: str = "127.0.0.1"
    port: int = 2024
    workers: int = 10  # runs executed at once by this process; 0: an API-only process
    lease_seconds: float = 3.0
    max_attempts: int = 10
    run_timeout_seconds: float = 24 * 3600.0
    shutdown_grace_seconds: float = 5.0
    pool_size: int = 20
    poll_seconds: float = 1.0  # shared databases: fallback check for lost notifications
    sqlite_synchronous: str = "NORMAL"
    http: HttpSettings = HttpSettings()
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    dependencies: list[str] = dataclasses.field(default_factory=list)
    store: StoreSettings = StoreSettings()
    auth: AuthSettings = AuthSettings()  # noqa: RUF009 - frozen, shared safely
    dev_mode: bool = False

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgres', from the database URL's scheme."""
        if self.database.startswith("sqlite:///"):
            return "sqlite"
        if self.database.startswith(("postgresql://", "postgres://")):
            return "postgres"
        raise ConfigError(
            f"Unsupported --database {self.database!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DBNAME"
        )

    @property
    def sqlite_path(self) -> Path:
        if self.backend != "sqlite":
            raise ConfigError(f"{self.database!r} is not a SQLite URL")
        path = Path(self.database[len("sqlite:///") :])
        return path if path.is_absolute() else self.base_dir / path

    @property
    def heartbeat_seconds(self) -> float:
        """How often leases are renewed: six chances before one runs out."""
        return min(self.lease_seconds / 6, 0.5)


def _graph_specs(raw: Any) -> list[GraphSpec]:
    if not isinstance(raw, dict):
        raise ConfigError("'graphs' must be an object mapping graph ids to paths")
    specs = []
    for graph_id, value in raw.items():
        if isinstance(value, str):
            specs.append(GraphSpec(graph_id, value))
        elif isinstance(value, dict) and isinstance(value.get("path"), str):
            extra = set(value) - {"path", "description"}
            if extra:
                raise ConfigError(f"graph {graph_id!r}: unsupported keys {sorted(extra)}")
            specs.append(GraphSpec(graph_id, value["path"], value.get("description")))
        else:
            raise ConfigError(f"graph {graph_id!r}: expected 'path.py:attr' or {{'path': ...}}")
    return specs


def _env(raw: Any, base_dir: Path, notes: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        path = (base_dir / raw).resolve()
        if not path.is_file():
            # As the reference: a missing .env reads as empty (new projects ship without one).
            notes.append(f"env file {str(path)!r} not found; starting without its variables")
            return {}
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    raise ConfigError("'env' must be an object or a path to a .env file")


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
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ConfigError(f"{what} must be a positive number of bytes, got {raw!r}")
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
        max_body_bytes=_body_limit(
            raw.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), "http.max_body_bytes"
        ),
    )


def _number(raw: Any, what: str, minimum: float = 0.0) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw <= minimum:
        raise ConfigError(f"{what} must be a number > {minimum:g}, got {raw!r}")
    return float(raw)


def _index(raw: Any) -> IndexSettings | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("'store.index' must be an object, or null to turn semantic search off")
    bad = set(raw) - {"dims", "embed", "fields"}
    if bad:
        raise ConfigError(f"store.index keys not supported: {sorted(bad)}")
    dims = raw.get("dims", 256)
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ConfigError(f"store.index.dims must be a positive integer, got {dims!r}")
    embed = raw.get("embed")
    if embed is not None and (not isinstance(embed, str) or not embed.strip()):
        raise ConfigError("store.index.embed must be 'provider:model' or 'path.py:function'")
    fields = raw.get("fields", ["$"])
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        raise ConfigError("store.index.fields must be a non-empty list of field paths")
    return IndexSettings(dims=dims, embed=embed, fields=tuple(fields))


def _ttl(raw: Any) -> TTLSettings:
    if raw is None:
        return TTLSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'store.ttl' must be an object")
    bad = set(raw) - {"default_ttl", "refresh_on_read", "sweep_interval_minutes"}
    if bad:
        raise ConfigError(f"store.ttl keys not supported: {sorted(bad)}")
    default = raw.get("default_ttl")
    refresh = raw.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise ConfigError("store.ttl.refresh_on_read must be true or false")
    sweep = raw.get("sweep_interval_minutes", 60)
    return TTLSettings(
        default_ttl=None if default is None else _number(default, "store.ttl.default_ttl"),
        refresh_on_read=refresh,
        sweep_interval_minutes=_number(sweep, "store.ttl.sweep_interval_minutes"),
    )


def store_settings(raw: Any) -> StoreSettings:
    """The `store` section of langgraph.json (absent: semantic search with Keel's model)."""
    if raw is None:
        return StoreSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'store' must be an object")
    bad = set(raw) - {"index", "ttl"}
    if bad:
        raise ConfigError(f"store keys not supported: {sorted(bad)}")
    index = _index(raw["index"]) if "index" in raw else IndexSettings()
    return StoreSettings(index=index, ttl=_ttl(raw.get("ttl")))


def read_config(path: Path, notes: list[str] | None = None) -> dict[str, Any]:
    """Parse and validate a keel.json / langgraph.json file; warnings are added to `notes`."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("config file must hold a JSON object")
    for key in sorted(set(data) - SUPPORTED_KEYS - SILENT_KEYS):
        if key in IGNORED_KEYS:
            if notes is not None:
                notes.append(f"config key {key!r} is a build concern; Keel ignores it")
        else:
            raise ConfigError(f"config key {key!r} is not supported by Keel yet")
    return data


ENVIRONMENT = {
    "KEEL_DATABASE": ("database", str),
    "KEEL_WORKERS": ("workers", int),
    "KEEL_LEASE_SECONDS": ("lease_seconds", float),
    "KEEL_MAX_ATTEMPTS": ("max_attempts", int),
    "KEEL_SQLITE_SYNCHRONOUS": ("sqlite_synchronous", str),
    "KEEL_RUN_TIMEOUT_SECONDS": ("run_timeout_seconds", float),
    "KEEL_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", float),
    "KEEL_PG_POOL_SIZE": ("pool_size", int),
    "KEEL_POLL_SECONDS": ("poll_seconds", float),
}


def _apply_environment(settings: Settings) -> None:
    for var, (field, cast) in ENVIRONMENT.items():
        if var in os.environ:
            setattr(settings, field, cast(os.environ[var]))
    limit = os.environ.get("KEEL_MAX_BODY_BYTES")
    if limit:
        max_body = _body_limit(_integer(limit), "KEEL_MAX_BODY_BYTES")
        settings.http = dataclasses.replace(settings.http, max_body_bytes=max_body)


def _integer(text: str) -> int | str:
    """`text` as an integer, or unchanged (for the caller's error message)."""
    try:
        return int(text)
    except ValueError:
        return text


def _check(settings: Settings) -> None:
    settings.backend  # noqa: B018 - validates the URL early, with a clear error
    if settings.lease_seconds <= 0 or settings.workers < 0 or settings.pool_size < 2:
        raise ConfigError("lease must be > 0 s, workers >= 0 and the pool size >= 2")
    settings.sqlite_synchronous = settings.sqlite_synchronous.upper()
    if settings.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigError(f"sqlite synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")


def load_settings(config: Path, *, quiet: bool = False, **overrides: Any) -> Settings:
    """Settings from a config file, then KEEL_* environment, then explicit overrides.

    Warnings about the file are logged once, unless `quiet` (a process that re-reads a file its
    parent has already reported on: the reloading child of `keel dev`)."""
    notes: list[str] = []
    data = read_config(config, notes)
    base_dir = config.resolve().parent
    deps = data.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError("'dependencies' must be a list of strings")
    settings = Settings(
        graphs=_graph_specs(data.get("graphs", {})),
        base_dir=base_dir,
        env=_env(data.get("env"), base_dir, notes),
        http=_http(data.get("http")),
        dependencies=deps,
        store=store_settings(data.get("store")),
        auth=auth_settings(data.get("auth")),
    )
    if not quiet:
        for note in notes:
            log.warning(note)
    _apply_environment(settings)
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    _check(settings)
    return settings
