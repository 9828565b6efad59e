"""`Runtime`: everything one Keel process runs, built from `Settings` and torn down in order.

An API server (`keel serve`, `keel dev`) wraps it in HTTP; `keel worker` runs it bare. Which
parts are active follows the settings: `workers=0` claims no runs (an API-only process); every
process reaps expired leases, fires due crons and, with a shared database, listens to the others.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from keel.assistants import ensure_system_assistants
from keel.auth.builtin import install as install_builtin_auth
from keel.auth.guard import build_guard
from keel.background.outbox import Outbox
from keel.background.triggers import Triggers
from keel.endings import Endings
from keel.graphs import GraphRegistry
from keel.metrics import Metrics
from keel.metrics.exposition import multiproc_dir
from keel.process import settle
from keel.relay import Relay
from keel.retention.sweeps import Sweeper
from keel.runs import RunService
from keel.sandbox import check_available as check_sandbox
from keel.sandbox.sandboxes import Sandboxes
from keel.scheduler import Scheduler
from keel.settings import Settings
from keel.storage import make_storage
from keel.storage.base import Storage
from keel.streams import StreamHub
from keel.tracing import Tracing
from keel.worker import WorkerPool

if TYPE_CHECKING:
    from keel.protocols.mcp_servers import McpServers

log = logging.getLogger("keel")


def export_env(settings: Settings) -> None:
    """The config's `env` into the process environment; variables already set win."""
    for key, value in settings.env.items():
        os.environ.setdefault(key, value)


def mcp_servers(settings: Settings) -> McpServers | None:
    """The `mcp_servers` service when the section is configured (its SDKs imported only then)."""
    if not settings.mcp_servers:
        return None
    from keel.protocols.mcp_servers import McpServers

    return McpServers(settings.mcp_servers)


def process_metrics(settings: Settings) -> Metrics:
    """A process without HTTP (`keel worker`) records metrics only for an API process on its host
    to serve them (multi-process mode); otherwise nobody could read them: off, at no cost."""
    if settings.http.enabled("metrics") and multiproc_dir() is not None:
        return Metrics.build()
    return Metrics.off()


class Runtime:
    def __init__(
        self, settings: Settings, metrics: Metrics | None = None, tracing: Tracing | None = None
    ) -> None:
        export_env(settings)
        if settings.sandbox is not None:
            check_sandbox()  # SandboxUnavailable here: never an unsandboxed fallback later
            if os.getpid() == 1:  # a container without --init: nothing reaps sandbox inits
                log.warning(
                    "keel runs as PID 1 with the sandbox on: each command's exited sandbox init "
                    "stays a zombie counted in its thread's process limit; run under an init "
                    "that reaps (docker run --init, tini)"
                )
        self.settings = settings
        self.graphs = GraphRegistry.load(settings.graphs, settings.base_dir, settings.dependencies)
        self.storage: Storage = make_storage(settings)
        # Per-thread sandboxes (keel.sandbox) when configured; a run's graph reaches its own
        # through keel.sandbox.current().
        self.sandboxes = (
            Sandboxes(settings.sandbox, self.storage) if settings.sandbox is not None else None
        )
        # MCP servers whose tools graphs use (keel.protocols.mcp_servers.tools()): connected on
        # first use, shared by every run of this process, closed at stop.
        self.mcp_servers = mcp_servers(settings)
        self.hub = StreamHub(feed_queue=settings.stream_queue)
        # Prometheus metrics (keel.metrics): served by the HTTP app that passes them in.
        self.metrics = metrics if metrics is not None else process_metrics(settings)
        recorder = self.metrics.recorder
        # OpenTelemetry traces (keel.tracing): the HTTP app's, or this process's own.
        self.tracing = tracing if tracing is not None else Tracing.from_env()
        if recorder.enabled:
            self.storage.record_queries(recorder.query_done)
        # Hooks of every run's terminal transaction (keel.endings).
        self.endings = Endings()
        self.workers = WorkerPool(
            settings,
            self.storage,
            self.graphs,
            self.hub,
            endings=self.endings,
            sandboxes=self.sandboxes,
            mcp_servers=self.mcp_servers,
            recorder=recorder,
            tracing=self.tracing,
        )
        self.runs = RunService(
            self.storage,
            self.graphs,
            self.hub,
            self.workers.notify,
            self.workers.cancel_local,
            origin=self.workers.worker_id,
            endings=self.endings,
            recorder=recorder,
            tracing=self.tracing,
        )
        self.sweeper = Sweeper(self.storage, settings)
        self.scheduler = Scheduler(self.storage, self.runs, self.sweeper)
        # Sleep-time triggers: armed in runs' terminal transactions, fired by their own loop.
        self.triggers = Triggers(settings, self.storage, self.runs)
        if self.triggers.specs:
            self.endings.add(self.triggers.on_end)
        self.guard = build_guard(settings.auth, settings.base_dir)
        install_builtin_auth(self.guard, self.storage)
        self.runs.admit = self.guard.admit_run if self.guard.quotas is not None else None
        self.relay = Relay(self.storage, self.hub, self.workers, settings.poll_seconds)
        # Webhooks: a delivery row in each run's terminal transaction; delivered by every process.
        self.outbox = Outbox(
            self.storage,
            settings.webhooks,
            enabled=settings.http.enabled("webhooks"),
            holder=self.workers.worker_id,
            poll_seconds=settings.poll_seconds,
            lease_seconds=settings.lease_seconds,
            recorder=recorder,
        )
        self.endings.add(self.outbox.record)

    async def start(self) -> None:
        await self.storage.open()
        self.storage.store.recorder = self.metrics.recorder
        try:
            await ensure_system_assistants(self.storage, self.graphs)
            await self.relay.start()
            await self.workers.start()
            await self.scheduler.start()
            await self.outbox.start()
            await self.triggers.start()
        except BaseException:
            await self.relay.stop()
            await self.storage.close()
            raise
        if self.settings.own_process:
            settle()  # what was made so far stays: out of the collector's way (keel.process)

    async def stop(self) -> None:
        """Stop claiming; let in-flight runs finish within the grace period, else hand them
        back; then close the database."""
        await self.scheduler.stop()
        await self.triggers.stop()
        await self.workers.stop(self.settings.shutdown_grace_seconds)
        await self.outbox.stop(self.settings.shutdown_grace_seconds)
        if self.mcp_servers is not None:
            await self.mcp_servers.close()
        await self.relay.stop()
        await self.storage.close()
        self.metrics.close()
        self.tracing.close()
