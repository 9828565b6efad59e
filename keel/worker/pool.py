"""The worker pool: claims runs with a lease, executes them with LangGraph, records the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

from langgraph.types import StateSnapshot

from keel import clock
from keel.endings import Endings, RunEnd
from keel.errors import Conflict, Unavailable
from keel.execution import (
    StreamTranslator,
    error_payload,
    fallback_body,
    run_input,
    server_metadata,
    stream_run,
)
from keel.faults import Faults
from keel.graphs import GraphRegistry
from keel.lanes import LaneSlots
from keel.metrics.recorder import Recorder
from keel.run_config import CONTEXT_MIRRORED, carried_user, run_timeout, unmirror_context
from keel.runs import EVENTS_CHANNEL, RUNS_CHANNEL
from keel.sandbox.sandboxes import Sandboxes
from keel.serde import dumps, jsonable
from keel.settings import Settings
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.store_orgs import for_run
from keel.streams import RunChannel, StreamHub
from keel.threadstream.events import make_translator
from keel.tracing import Tracing
from keel.worker.leases import LOST, Leases
from keel.worker.recording import Flusher, end_run, roll_back, settle_thread
from keel.worker.registry import WorkerRegistry

if TYPE_CHECKING:
    from keel.protocols.mcp_servers import McpServers

log = logging.getLogger("keel.worker")
# Events reach the log this long after they are published; with a shared database other
# processes' subscribers read them from there, so the delay is shorter.
FLUSH_DELAY = {False: 0.05, True: 0.01}
CLAIM_RETRY = 1.0  # seconds before claiming again after a storage error
ATTEMPT_SEQ_SPAN = 1 << 32  # event ids of attempt n start at (n - 1) * span + 1
FINISH_RETRIES = (0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0)  # seconds between attempts
# Shutdown waits this long for the runs it cancelled to be handed back, whatever the grace: one
# transaction each (a connection is given up on after 10 s when the database is away).
HANDBACK_WAIT = 15.0
CLAIMER_WAIT = 5.0  # seconds shutdown waits for a claim in progress before cutting it


class Ending(NamedTuple):
    """How a run ended, as its terminal transaction records it."""

    status: str
    state: StateSnapshot | None
    result: Any
    error: Any
    cancel: str | None


class WorkerPool:
    """Executes up to `settings.workers` runs at once in this process."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        graphs: GraphRegistry,
        hub: StreamHub,
        faults: Faults | None = None,
        endings: Endings | None = None,
        sandboxes: Sandboxes | None = None,
        mcp_servers: McpServers | None = None,
        recorder: Recorder | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.recorder = recorder or Recorder()  # keel.metrics
        self.tracing = tracing or Tracing.off()  # keel.tracing
        self.sandboxes = sandboxes  # the graph phase makes keel.sandbox.current() work
        self.mcp_servers = mcp_servers  # ... and keel.protocols.mcp_servers.tools()
        self.endings = endings or Endings()
        self.storage = storage
        self.graphs = graphs
        self.hub = hub
        self.faults = faults or Faults.from_env()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: dict[str, str] = {}
        # Cancels of runs with no task here (yet): a run claimed just now picks its cancel up.
        self._early_cancels: dict[str, tuple[str, float]] = {}
        self._cancellable: set[str] = set()  # runs whose task is running their graph
        self._claimed_at: dict[str, float] = {}  # run id -> when this attempt was claimed
        self.registry = WorkerRegistry(settings, storage, self.worker_id)  # GET /keel/workers
        self.leases = Leases(settings, storage, self, self.registry)
        self.lanes = LaneSlots(settings.background.background_slots(settings.workers))
        self._claimer: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._stopping = False

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start claiming (unless this process runs no workers) and reaping expired leases."""
        if not self.storage.shared:
            async with self.storage.tx() as tx:
                # SQLite holds an exclusive file lock, so every 'running' row is an orphan.
                orphans = await tx.requeue_expired(clock.now(), clock.iso(), all_running=True)
            for run in orphans:
                log.warning("re-queued run %s left running by a previous process", run["run_id"])
        await self.registry.register()  # if it executes runs
        self._beat = asyncio.create_task(self.leases.loop(), name="keel-heartbeat")
        if self.settings.workers > 0:
            self._claimer = asyncio.create_task(self._claim_loop(), name="keel-claim")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give in-flight runs `grace` seconds, then hand them back (and wait
        for that). Their leases are renewed until then, so no other process takes one over."""
        self._stopping = True
        self._wakeup.set()
        await self._stop_claiming()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=HANDBACK_WAIT)
        await _cancel(self._beat)
        await self.registry.unregister()

    async def _stop_claiming(self) -> None:
        """Let the claim loop end by itself: a run it has claimed is then executed, and handed
        back below. Cancelled there, a claimed run would stay `running` under this (exiting)
        process until its lease ran out. Only a claim that hangs (the database away) is cut."""
        claimer = self._claimer
        if claimer is None:
            return
        _, pending = await asyncio.wait([claimer], timeout=CLAIMER_WAIT)
        if pending:
            await _cancel(claimer)

    def notify(self) -> None:
        self._wakeup.set()

    def executing(self) -> list[str]:
        """The runs this pool's tasks execute right now."""
        return list(self._tasks)

    def cancel_requested(self, run_id: str) -> bool:
        return run_id in self._cancel_requested

    def cancel_local(self, run_id: str, action: str) -> bool:
        """Stop executing a run here (once: a second request changes nothing). Its task is
        cancelled only while it runs the graph: a cancel that comes earlier ends the run
        before its graph starts, one that comes later leaves the outcome being recorded."""
        task = self._tasks.get(run_id)
        if task is None:
            if action != LOST:
                self._remember_cancel(run_id, action)
            return False
        if run_id not in self._cancel_requested:
            self._cancel_requested[run_id] = action
            if run_id in self._cancellable:
                task.cancel()
        return True

    # ----------------------------------------------------------------- loops
    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            # Runs due by `checked` are claimed below or wait for a wake-up (a run of this
            # process ends, a run is created or cancelled); only later ones need a timer.
            checked = clock.iso()
            try:
                while not self._stopping and len(self._tasks) < self.settings.workers:
                    run = await self._claim()
                    if run is None:
                        break
                    await self._point("after-claim", run)
                    self._spawn(run)
                timeout = await self._next_due_in(checked)
                if self.storage.shared:  # in case a notification from another process is lost
                    timeout = min(timeout or self.settings.poll_seconds, self.settings.poll_seconds)
            except Exception:
                # A failed claim must not end the loop: nothing else would ever claim again.
                log.exception("claiming runs failed")
                timeout = CLAIM_RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _claim(self) -> Row | None:
        for _ in range(3):
            now = clock.now()
            try:
                async with self.storage.statements() as tx:
                    lease = now + self.settings.lease_seconds
                    run = await tx.claim_next(
                        self.worker_id, clock.iso(now), lease, self.lanes.max_lane()
                    )
            except Conflict:  # another process claimed a run of the same thread just now
                continue
            if run is not None:
                self.leases.secured[run["run_id"]] = now
                self._claimed_at[run["run_id"]] = now
                self.recorder.run_claimed(run, now)
            return run
        return None

    def _remember_cancel(self, run_id: str, action: str) -> None:
        """Keep a cancel for a run with no task here, for a while: it may have been claimed just
        now (its task is about to start). Most are other processes' runs, and are forgotten."""
        now = clock.now()
        stale = now - self.settings.lease_seconds
        for other, (_, at) in list(self._early_cancels.items()):
            if at < stale:
                del self._early_cancels[other]
        self._early_cancels[run_id] = (action, now)

    def _spawn(self, run: Row) -> None:
        """Start the task executing a claimed run. A cancel stored on the run (it was cancelled
        before a restart or a hand-back) or received since the claim ends it before its graph."""
        run_id = run["run_id"]
        early = self._early_cancels.pop(run_id, None)
        action = run.get("cancel_action") or (early[0] if early else None)
        if action:
            self._cancel_requested[run_id] = action
        task = asyncio.create_task(self._execute(run), name=f"run-{run_id}")
        self._tasks[run_id] = task
        self.recorder.executing(1)
        self.lanes.started(run)
        task.add_done_callback(functools.partial(self._forget, run_id))

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        """Done callback of a run's task, however it ended (even cancelled before it ran)."""
        if self._tasks.get(run_id) is not task:
            return
        del self._tasks[run_id]
        self.recorder.executing(-1)
        self._claimed_at.pop(run_id, None)
        self.lanes.ended(run_id)
        self._cancel_requested.pop(run_id, None)
        self.leases.secured.pop(run_id, None)
        self._cancellable.discard(run_id)
        ch = self.hub.get(run_id)
        if ch is not None and ch.local:  # not recorded: subscribers look again
            self.hub.close(run_id, finished=False)
        self._wakeup.set()

    async def _point(self, name: str, run: Row) -> None:
        await self.faults.point(name, run["thread_id"], run["run_id"])

    async def _next_due_in(self, after: str) -> float | None:
        """Seconds until a pending run created for later than `after` becomes due, if any."""
        async with self.storage.read() as tx:
            due = await tx.next_pending_at(after)
        if due is None:
            return None
        return max(clock.parse(due) - clock.now(), 0.0) + 0.001

    # -------------------------------------------------------------- execution
    async def _execute(self, run: Row) -> None:
        """One attempt at a run, from its claim to its terminal state (or its hand-back)."""
        ch: RunChannel | None = None
        flusher: Flusher | None = None
        try:
            with self.tracing.run_span(run, self.worker_id):  # its span; ids on log lines
                await self._point("run-start", run)
                ch = self.hub.open(run["run_id"], run["thread_id"], await self._first_seq(run))
                flusher = Flusher(self.storage, ch, FLUSH_DELAY[self.storage.shared], self.recorder)
                await self._execute_inner(run, ch, flusher)
        except asyncio.CancelledError:
            # Only shutdown cancels a run's task outside its graph: hand the run back.
            await self._release(run, ch, flusher)
            raise
        except Exception:
            log.exception("run %s: bookkeeping failed; its lease will expire", run["run_id"])

    async def _execute_inner(self, run: Row, ch: RunChannel, flusher: Flusher) -> None:
        run_id = run["run_id"]
        self.hub.publish(ch, "metadata", dumps({"run_id": run_id, "attempt": run["attempt"]}))
        await self._point("channel-open", run)
        kwargs = run["kwargs"]

        def publish(name: str, data: Any) -> None:
            self.hub.publish(ch, name, dumps(data))
            flusher.schedule()

        translator = make_translator(kwargs, publish)
        if self._stopped_before_graph(run_id):
            await self._cancelled(run, ch, flusher)
            return
        if run["attempt"] > self.settings.max_attempts:
            exc = RuntimeError(f"run abandoned after {run['attempt'] - 1} attempts")
            await self._finish(run, ch, flusher, "error", exc=exc)
            return
        deadline = asyncio.timeout(run_timeout(kwargs, self.settings.run_timeout_seconds))
        try:
            state, status = await self._graph_phase(run, translator, deadline)
        except asyncio.CancelledError:
            if run_id in self._cancel_requested:
                _uncancel()  # handled here: recording it must not see a cancel pending
            await self._cancelled(run, ch, flusher)
            return
        except Exception as exc:
            if self.storage.is_unavailable(exc):
                # The database went away under the graph (a checkpoint or store call): not the
                # run's failure. Hand it back; the next attempt resumes from its last checkpoint.
                log.warning("run %s: database unavailable (%s); handing it back", run_id, exc)
                await self._release(run, ch, flusher)
                return
            # A TimeoutError raised by the graph itself is an error, not a run timeout.
            timed_out = isinstance(exc, TimeoutError) and deadline.expired()
            await self._finish(run, ch, flusher, "timeout" if timed_out else "error", exc=exc)
            return
        result = translator.result.body(lambda: fallback_body(state, bool(run["temporary"])))
        await self._finish(run, ch, flusher, status, state=state, result=result)

    def _stopped_before_graph(self, run_id: str) -> bool:
        """Whether the run is cancelled before its graph starts (or its lease went unrenewed so
        long since the claim that it may be someone else's now)."""
        if self.leases.stale(run_id):
            self._cancel_requested.setdefault(run_id, LOST)
        return run_id in self._cancel_requested

    async def _graph_phase(
        self, run: Row, translator: StreamTranslator, deadline: asyncio.Timeout
    ) -> tuple[StateSnapshot, str]:
        """Build and run the graph: the only stretch in which a cancel cancels the task, so a
        CancelledError can only come out of here (or from shutdown)."""
        run_id = run["run_id"]
        self._cancellable.add(run_id)
        try:
            async with deadline:
                await self._point("before-graph", run)
                with (
                    self.sandboxes.active() if self.sandboxes else contextlib.nullcontext(),
                    self.mcp_servers.active() if self.mcp_servers else contextlib.nullcontext(),
                ):
                    return await self._run_graph(run, translator)
        finally:
            self._cancellable.discard(run_id)

    async def _first_seq(self, run: Row) -> int:
        """The first event id of this attempt: a recovered run continues its event ids."""
        if run["attempt"] <= 1:
            return 1
        async with self.storage.read() as tx:
            logged = await tx.max_event_seq(run["run_id"])
        # The killed attempt may have sent clients events that never reached the log; start
        # past every id it can have used, so a client resuming after one misses nothing.
        return max(logged + 1, (int(run["attempt"]) - 1) * ATTEMPT_SEQ_SPAN + 1)

    async def _cancelled(self, run: Row, ch: RunChannel, flusher: Flusher) -> None:
        """The run was cancelled: shutdown, a lost lease, or a user's cancel."""
        action = self._cancel_requested.get(run["run_id"])
        if action is None:  # shutdown: _execute hands the run back to the queue
            raise asyncio.CancelledError
        if action == LOST:  # not ours any more: write nothing, the next owner carries on
            flusher.cancel()
            self.hub.close(run["run_id"], finished=False)
            return
        await self._finish(run, ch, flusher, "interrupted", cancel=action)

    async def _run_graph(self, run: Row, translator: StreamTranslator) -> tuple[StateSnapshot, str]:
        """Execute the graph; returns the thread's state afterwards and the run's status, which
        is `success` even when the run stopped at an interrupt (the thread says `interrupted`)."""
        kwargs = run["kwargs"]
        resumed = False
        if run["attempt"] > 1:  # a recovered run continues from its last checkpoint, if any
            async with self.storage.read() as tx:
                resumed = await tx.run_has_checkpoint(run["thread_id"], run["run_id"])
        config = jsonable(kwargs["config"])
        config["metadata"]["run_attempt"] = run["attempt"]
        config["metadata"].update(server_metadata())
        configurable = config["configurable"]
        mirrored = configurable.pop(CONTEXT_MIRRORED, False)
        graph_input = run_input(kwargs, configurable, resumed)
        entry = self.graphs.get(configurable["graph_id"])
        storage = self.storage
        context = kwargs.get("context")
        user = carried_user(configurable)  # who created the run, in this process too
        store = for_run(storage.store, run, self.settings.auth.builtin)  # its organisation's
        async with entry.build(
            config, storage.checkpointer, store, "threads.create_run", context, user
        ) as graph:
            if run["attempt"] == 1:  # the root run's id is the run's (events, traces)
                config = {**config, "run_id": uuid.UUID(run["run_id"])}
            if self.tracing.enabled:  # node, tool and model spans (keel.tracing.callbacks)
                config = {**config, "callbacks": self.tracing.callbacks()}
            kept = entry.run_context(graph, context)
            if mirrored:
                unmirror_context(configurable, context, kept)
            context = kept
            await stream_run(graph, graph_input, config, kwargs, context, translator)
            state = translator.final_state()
            if state is None:  # stopped early, or nothing streamed: ask the checkpointer
                state_config = {"configurable": {"thread_id": run["thread_id"]}}
                state = await graph.aget_state(state_config)  # type: ignore[arg-type]
        return state, "success"

    async def _finish(
        self,
        run: Row,
        ch: RunChannel,
        flusher: Flusher,
        status: str,
        *,
        state: StateSnapshot | None = None,
        result: Any = None,
        exc: BaseException | None = None,
        cancel: str | None = None,
    ) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        error = error_payload(exc) if exc is not None else None
        if error is not None:
            self.hub.publish(ch, "error", dumps(error))
            result = {"__error__": error}
            if not isinstance(exc, TimeoutError):
                log.error("run %s failed: %r", run_id, exc)
        self.tracing.run_ended(status, error)
        flusher.cancel()
        if cancel == "rollback":
            await roll_back(self.storage, self.worker_id, run)
        if state is None and not run["temporary"]:
            state = await self._state_of(run)
        await self._point("before-record", run)
        if not await self._record(run, ch, Ending(status, state, result, error, cancel)):
            log.warning("run %s: not recorded: its lease was lost or it was deleted", run_id)
            self.hub.close(run_id, finished=False)
            return
        ch.flushed = len(ch.events)
        ch.result = result
        self.hub.run_done(run_id, thread_id)
        self.recorder.run_finished(run, status, self._claimed_at.get(run_id, clock.now()))

    async def _record(self, run: Row, ch: RunChannel, end: Ending) -> bool:
        """The terminal transaction: last events, status, thread. False if no longer ours.
        Retried a few times (about 6 s in all) while the database is away."""
        for delay in FINISH_RETRIES:
            try:
                return await self._record_once(run, ch, end)
            except Unavailable as exc:
                log.warning("run %s: recording its end failed (%s); retrying", run["run_id"], exc)
                await asyncio.sleep(delay)
        return await self._record_once(run, ch, end)

    async def _record_once(self, run: Row, ch: RunChannel, end: Ending) -> bool:
        run_id, thread_id = run["run_id"], run["thread_id"]
        status, state, result, error, cancel = end
        now = clock.iso()
        logged = len(ch.unflushed()) if cancel != "rollback" else 0
        async with self.storage.tx() as tx:
            await tx.lock_thread(thread_id)
            if not await end_run(tx, self.worker_id, run, ch, (status, result, now, cancel)):
                return False
            if cancel != "rollback":
                values = jsonable(state.values) if state is not None else None
                await self.endings.record(tx, RunEnd(run, status, now, values, error))
            if run["temporary"]:
                await tx.delete_thread(thread_id, keep_runs=True)
            elif await settle_thread(tx, thread_id, status, state, error, now):
                await tx.notify(RUNS_CHANNEL, self.worker_id)  # the thread's next run is due
            await tx.notify(EVENTS_CHANNEL, f"{run_id} {thread_id} done")
        self.recorder.events_written(logged)
        return True

    async def _release(self, run: Row, ch: RunChannel | None, flusher: Flusher | None) -> None:
        """Shutdown: save the run's events and put it back to pending for the next worker."""
        try:
            if flusher is not None:
                flusher.cancel()
                await flusher.flush()
            async with self.storage.tx() as tx:
                await tx.release_run(run["run_id"], self.worker_id, clock.iso())
                await tx.notify(RUNS_CHANNEL, self.worker_id)
        except Exception as exc:  # the lease runs out and the reaper re-queues it
            log.warning("run %s: not handed back (%s); its lease will expire", run["run_id"], exc)
        if ch is not None:
            self.hub.close(run["run_id"], finished=False)

    async def _state_of(self, run: Row) -> StateSnapshot | None:
        """The thread's current state, for runs that ended without producing one."""
        config = jsonable(run["kwargs"]["config"])
        try:
            entry = self.graphs.get(config["configurable"]["graph_id"])
            storage = self.storage
            user = carried_user(config["configurable"])
            async with entry.build(config, storage.checkpointer, storage.store, user=user) as graph:
                return await graph.aget_state({"configurable": {"thread_id": run["thread_id"]}})
        except Exception:
            log.exception("run %s: reading the thread state failed", run["run_id"])
            return None


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
