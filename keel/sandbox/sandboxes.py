"""`Sandboxes`: the process's sandbox service (built by the Runtime when the `sandbox` section is
configured): the sandbox of a thread, workspace removal, and the sandbox of the run being
executed (`current()`, set by the worker around a run's graph)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from keel.errors import ConfigError
from keel.sandbox import Sandbox, lifecycle, workspaces
from keel.sandbox.sync import WorkspaceSync, enabled
from keel.settings.sandbox import SandboxSettings
from keel.storage.base import Storage

_ACTIVE: contextvars.ContextVar[Sandboxes | None] = contextvars.ContextVar(
    "keel_sandboxes", default=None
)


class Sandboxes:
    def __init__(self, settings: SandboxSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        # Several hosts: workspaces published to / restored from the database (keel.sandbox.sync).
        self.sync = WorkspaceSync(storage, settings) if enabled(settings, storage) else None
        self.loop: asyncio.AbstractEventLoop | None = None
        # A deleted thread's workspace goes once the deleting transaction commits (no storage:
        # the in-process tests' service, one host without a database).
        if storage is not None:
            storage.on_thread_deleted(self.remove)

    def for_thread(self, thread_id: str) -> Sandbox:
        """The sandbox of `thread_id`; its workspace is created when missing."""
        made = not workspaces.path_for(self.settings.root, thread_id).exists()
        workspace = workspaces.ensure(self.settings.root, thread_id)
        if self.sync is None:
            return Sandbox(workspace, self.settings)
        if made:  # a new, empty directory: whatever version this host had is gone
            self.sync.forget(thread_id)
        hooks = self.sync.hooks(thread_id, workspace, self._loop())
        return Sandbox(workspace, self.settings, hooks)

    def remove(self, thread_id: str) -> None:
        """Delete the thread's workspace (nothing when it has none): moved away at once, its
        files deleted in the background (keel.sandbox.lifecycle)."""
        lifecycle.discard(self.settings.root, thread_id)
        if self.sync is not None:
            self.sync.forget(thread_id)

    def _loop(self) -> asyncio.AbstractEventLoop:
        self._loop_if_running()
        if self.loop is None:
            raise ConfigError("a synced sandbox is first made on Keel's event loop")
        return self.loop

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within this block (a run's graph), `current()` resolves through this service."""
        self._loop_if_running()
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def _loop_if_running(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop = asyncio.get_running_loop()


def current(config: Any = None) -> Sandbox:
    """The sandbox of the thread whose run is executing (inside a graph node or tool).
    `config`: the node's RunnableConfig, else LangGraph's current config."""
    service = _ACTIVE.get()
    if service is None:
        raise ConfigError(
            "keel.sandbox.current(): no sandbox here (add a `sandbox` section to keel.json; "
            "only a run's graph executed by Keel has one)"
        )
    if config is None:
        from langgraph.config import get_config

        config = get_config()
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if not thread_id:
        raise ConfigError("keel.sandbox.current(): the run has no thread")
    return service.for_thread(str(thread_id))
