"""`keel dev`: uvicorn's file-watching reloader, blind to the files Keel itself writes.

uvicorn hands watchfiles no filter, so every write under the project reaches the watcher: the
dev database (`.keel/keel.db`, its `-wal`, `-shm` and lock files) sits inside the project by
default, and each run logged "N changes detected". Here the watcher skips the database's files
and the folders watchfiles ignores by default (`.git`, `.venv`, `__pycache__`, ...); uvicorn
still decides what restarts the server (`*.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from socket import socket

from uvicorn import Config, Server
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors.watchfilesreload import WatchFilesReload
from watchfiles import Change, DefaultFilter, watch

from keel.logs import json_logs
from keel.settings import Settings


class SkipOwnFiles(DefaultFilter):
    """watchfiles' default filter, plus the SQLite database, its side files and its folder."""

    def __init__(self, database: Path | None) -> None:
        super().__init__()
        self.folder = os.path.realpath(database.parent) if database is not None else None
        self.name = database.name if database is not None else ""

    def __call__(self, change: Change, path: str) -> bool:
        if self.folder is not None:
            folder, name = os.path.split(path)
            if name.startswith(self.name) and os.path.realpath(folder) == self.folder:
                return False
            if os.path.realpath(path) == self.folder:  # `.keel/` created on first start
                return False
        return super().__call__(change, path)


class DevReload(WatchFilesReload):
    def __init__(
        self,
        config: Config,
        target: Callable[[list[socket] | None], None],
        sockets: list[socket],
        watch_filter: SkipOwnFiles,
    ) -> None:
        super().__init__(config, target, sockets)
        # The same watcher uvicorn builds (a lazy generator, not started yet), with a filter.
        self.watcher = watch(
            *self.reload_dirs,
            watch_filter=watch_filter,
            stop_event=self.should_exit,
            yield_on_timeout=True,
            ignore_permission_denied=True,
        )


def run_dev(settings: Settings, app: str) -> None:
    """Serve the factory `app` ("module:function") with reload on code change. With JSON logs
    uvicorn installs no handlers of its own, in this process or in the child it restarts: its
    lines reach the root logger's JSON handler (the child's is set by the factory)."""
    config = Config(
        app,
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=True,
        reload_dirs=[str(settings.base_dir)],
        log_level="info",
        log_config=None if json_logs() else LOGGING_CONFIG,
    )
    database = settings.sqlite_path if settings.backend == "sqlite" else None
    server = Server(config=config)
    sock = config.bind_socket()
    with contextlib.suppress(KeyboardInterrupt):
        DevReload(config, server.run, [sock], SkipOwnFiles(database)).run()
