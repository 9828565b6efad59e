"""One typed Settings object, loaded at the edge (CLI, tests) and passed down: the config file's
keys, then KEEL_* environment variables, then explicit overrides."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from keel.errors import ConfigError
from keel.settings.auth import AuthSettings, auth_settings
from keel.settings.http import HttpSettings, _body_limit, _http
from keel.settings.mcp_servers import McpServerSpec, mcp_servers_settings
from keel.settings.mcp_servers import check_environment as check_mcp_environment
from keel.settings.retention import (
    CheckpointerSettings,
    RetentionSettings,
    checkpointer_settings,
    retention_settings,
)
from keel.settings.sandbox import SandboxSettings, sandbox_settings
from keel.settings.sleep_time import BackgroundSettings, background_settings
from keel.settings.store import StoreSettings, store_settings
from keel.settings.webhooks import WebhookSettings, check_environment, webhook_settings

log = logging.getLogger("keel.settings")

# Keys of langgraph.json that Keel honours.
SUPPORTED_KEYS = {
    "graphs",
    "dependencies",
    "env",
    "http",
    "store",
    "auth",
    "checkpointer",
    "retention",
    "webhooks",
    "background",  # Keel's: priority lanes and sleep-time triggers (keel.settings.sleep_time)
    "sandbox",  # Keel's: per-thread sandboxed code execution (keel.settings.sandbox)
    "mcp_servers",  # Keel's: MCP servers whose tools graphs use (keel.settings.mcp_servers)
}

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

SQLITE_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    path: str
    description: str | None = None


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
    stream_queue: int = 10_000  # live events held for one thread-stream subscriber
    sqlite_synchronous: str = "NORMAL"
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    dependencies: list[str] = dataclasses.field(default_factory=list)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    checkpointer: CheckpointerSettings = dataclasses.field(default_factory=CheckpointerSettings)
    retention: RetentionSettings = dataclasses.field(default_factory=RetentionSettings)
    webhooks: WebhookSettings = dataclasses.field(default_factory=WebhookSettings)
    background: BackgroundSettings = dataclasses.field(default_factory=BackgroundSettings)
    sandbox: SandboxSettings | None = None  # None: no `sandbox` section, no sandbox
    mcp_servers: dict[str, McpServerSpec] = dataclasses.field(default_factory=dict)
    dev_mode: bool = False
    own_process: bool = False  # started by Keel's own command: process-wide tuning (keel.process)

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
    "KEEL_STREAM_QUEUE": ("stream_queue", int),
}


def _apply_environment(settings: Settings) -> None:
    for var, (field, cast) in ENVIRONMENT.items():
        if var in os.environ:
            setattr(settings, field, cast(os.environ[var]))
    limit = os.environ.get("KEEL_MAX_BODY_BYTES")
    if limit:
        max_body = _body_limit(_integer(limit), "KEEL_MAX_BODY_BYTES")
        settings.http = dataclasses.replace(settings.http, max_body_bytes=max_body)
    root = os.environ.get("KEEL_SANDBOX_ROOT")
    if root and settings.sandbox is not None:  # this host's workspaces (one per machine)
        settings.sandbox = dataclasses.replace(settings.sandbox, root=Path(root).resolve())


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
    if settings.stream_queue < 1:
        raise ConfigError("KEEL_STREAM_QUEUE must be at least 1")
    check_environment(settings.webhooks, {**settings.env, **os.environ})
    check_mcp_environment(settings.mcp_servers, {**settings.env, **os.environ})
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
        checkpointer=checkpointer_settings(data.get("checkpointer")),
        retention=retention_settings(data.get("retention")),
        webhooks=webhook_settings(data.get("webhooks")),
        background=background_settings(data.get("background")),
        sandbox=sandbox_settings(data.get("sandbox"), base_dir),
        mcp_servers=mcp_servers_settings(data.get("mcp_servers"), base_dir),
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
