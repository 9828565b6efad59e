"""`keel dev | serve | worker | migrate | keys | audit | db`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from keel.errors import KeelError
from keel.logs import configure as configure_logs
from keel.logs import json_logs
from keel.settings import Settings, load_settings

log = logging.getLogger("keel")
CONFIG_NAMES = ("keel.json", "langgraph.json")


def _find_config(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for name in CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    raise KeelError("no keel.json or langgraph.json here; pass --config PATH")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description="Keel agent runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("dev", "development server: reloads on code change"),
        ("serve", "production server"),
        ("worker", "execute runs only, no HTTP (PostgreSQL)"),
        ("migrate", "apply database migrations and exit"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="keel.json or langgraph.json (default: ./keel.json)")
        p.add_argument(
            "--database", help="sqlite:///PATH (default .keel/keel.db) or postgresql://..."
        )
        if name in ("dev", "serve"):
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=2024)
            p.add_argument(
                "--no-workers", action="store_true", help="API only: execute no runs here"
            )
        if name != "migrate":
            p.add_argument("--workers", type=int, help="runs executed at once (default 10)")
    _keys_parser(sub)
    _audit_parser(sub)
    _db_parser(sub)
    return parser


def _database_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="keel.json or langgraph.json (default: ./keel.json)")
    p.add_argument("--database", help="sqlite:///PATH (default .keel/keel.db) or postgresql://...")


def _keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="built-in API keys (auth.api_keys)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--org", required=True, help="the organisation the key acts in")
    create.add_argument("--role", required=True, help="admin, member or viewer")
    create.add_argument("--name", help="a name to recognise the key by")
    create.add_argument("--expires", type=float, metavar="DAYS", help="expire after DAYS days")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--org", help="only this organisation's keys")
    revoke = actions.add_parser("revoke", help="revoke a key: refused from the next request on")
    revoke.add_argument("key_id")
    for p in (create, listing, revoke):
        _database_args(p)
        p.add_argument("--json", action="store_true", help="print JSON")


def _audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="read the audit log, newest first")
    _database_args(audit)
    audit.add_argument("--org", help="only this organisation's entries")
    audit.add_argument("--since", help="an ISO time, or a span back from now: 30m, 12h, 7d")
    audit.add_argument("--outcome", choices=("ok", "refused"))
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="print JSON")


def _db_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="the database: its size, and giving space back")
    actions = db.add_subparsers(dest="db_command", required=True)
    stats = actions.add_parser(
        "stats", help="rows and bytes per table, oldest run, what the next sweep would remove"
    )
    _database_args(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    vacuum = actions.add_parser(
        "vacuum",
        help="SQLite: convert to incremental auto-vacuum, give free pages back; "
        "PostgreSQL: VACUUM (ANALYZE) Keel's tables",
    )
    _database_args(vacuum)


def _settings(args: argparse.Namespace) -> Settings:
    config = _find_config(args.config)
    workers = 0 if getattr(args, "no_workers", False) else getattr(args, "workers", None)
    settings = load_settings(
        config,
        database=args.database,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=workers,
        dev_mode=args.command == "dev",
        own_process=True,
    )
    if settings.backend == "sqlite" and args.command == "worker":
        raise KeelError(
            "keel worker needs a shared database (--database postgresql://...): with SQLite "
            "one `keel serve` process executes every run"
        )
    if settings.backend == "sqlite" and settings.workers == 0:
        raise KeelError("--no-workers needs PostgreSQL: with SQLite nothing else executes runs")
    return settings


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise KeelError(
                f"port {port} on {host} is already in use ({exc.strerror}); "
                "pass --port to choose another"
            ) from None


def announce(message: str) -> None:
    """A line for whoever started the process: printed, or logged with JSON logs."""
    if json_logs():
        log.info(message)
    else:
        print(message, flush=True)


def app_from_env() -> Any:
    """Factory for uvicorn's reloader: settings travel in KEEL_SETTINGS_JSON. The parent has
    reported the config's warnings already: this process, started again on every reload, is
    quiet about them. A spawned process, it sets up its own log handler (JSON or text)."""
    from keel.http.app import create_app

    configure_logs()

    raw = json.loads(os.environ["KEEL_SETTINGS_JSON"])
    settings = load_settings(Path(raw.pop("config")), quiet=True, **raw)
    return create_app(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from keel.http.app import create_app

    _check_port(settings.host, settings.port)
    url = f"http://{settings.host}:{settings.port}{settings.http.mount_prefix}"
    if args.command == "dev":
        _dev(args, settings, url)
        return
    app = create_app(settings)  # a broken custom app (http.app) fails here, before "listening"
    announce(f"Keel listening on {url}")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=os.environ.get("KEEL_LOG_LEVEL", "warning"),
        # JSON logs: uvicorn's loggers go through the root logger's JSON handler (keel.logs).
        log_config=None if json_logs() else LOGGING_CONFIG,
        timeout_graceful_shutdown=10,
    )


def _dev(args: argparse.Namespace, settings: Settings, url: str) -> None:
    """Serve from a child process that uvicorn's reloader restarts on code change."""
    from keel.devreload import run_dev

    announce(f"Keel listening on {url}")
    os.environ["KEEL_SETTINGS_JSON"] = json.dumps(
        {
            "config": str(_find_config(args.config).resolve()),
            "database": settings.database,
            "host": settings.host,
            "port": settings.port,
            "workers": settings.workers,
            "dev_mode": True,
            "own_process": True,
        }
    )
    run_dev(settings, "keel.cli:app_from_env")


async def _worker(settings: Settings) -> None:
    """Execute runs until SIGTERM/SIGINT, then hand back what is still running."""
    import signal

    from keel.runtime import Runtime

    runtime = Runtime(settings)
    runtime.workers.registry.kind = "worker"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    announce(f"Keel worker {runtime.workers.worker_id} running")
    try:
        await stop.wait()
    finally:
        await runtime.stop()


async def _migrate(settings: Settings) -> None:
    from keel.storage import open_storage

    storage = await open_storage(settings)
    await storage.close()


def _administer(args: argparse.Namespace, settings: Settings) -> None:
    from keel.auth.commands import audit_command, keys_command
    from keel.retention.stats import stats_command
    from keel.retention.vacuum import vacuum_command

    if args.command == "db":
        command = stats_command if args.db_command == "stats" else vacuum_command
    else:
        command = keys_command if args.command == "keys" else audit_command
    asyncio.run(command(settings, args))


def _run_worker(settings: Settings) -> None:
    import uvloop

    uvloop.run(_worker(settings))


def main(argv: list[str] | None = None) -> None:
    configure_logs()  # text, or one JSON object per line with KEEL_LOG_FORMAT=json
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"migrated {settings.database}")
            return
        if args.command in ("keys", "audit", "db"):
            _administer(args, settings)
            return
        if args.command == "worker":
            _run_worker(settings)
            return
        _serve(args, settings)
    except KeelError as exc:
        print(f"keel: error: {exc.detail}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
