"""Workers: claim runs with a lease, execute them with LangGraph, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

from langgraph.types import StateSnapshot

from keel import clock
from keel.errors import Conflict, Unavailable
from keel.execution import (
    StreamTranslator,
    error_payload,
    fallback_body,
    run_input,
    server_metadata,
    stream_run,
    thread_interrupts,
)
from keel.graphs import GraphRegistry
from keel.runs import CONTEXT_MIRRORED, EVENTS_CHANNEL, RUNS_CHANNEL, unmirror_context
from keel.serde import dumps, jsonable
from keel.settings import Settings
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx
from keel.streams import TERMINAL, RunChannel, StreamHub

log = logging.getLogger("keel.worker")
# Events reach the log this long after they are published; with a shared database other
# processes' subscribers read them from there, so the delay is shorter.
FLUSH_DELAY = {False: 0.05, True: 0.01}
CLAIM_RETRY = 1.0  # seconds before claiming again after a storage error
ATTEMPT_SEQ_SPAN = 1 << 32  # event ids of attempt n start at (n - 1) * span + 1
# A worker that could not renew a run's lease for this share of the lease stops executing it,
# before any other process may take it over (the lease runs out).
FENCE_SHARE = 0.75
LOST = "lost"  # cancel action: the lease is (or may be) someone else's now
TEMPORARY_RUN_RETENTION = 60.0  # seconds a finished stateless run stays readable
FINISH_RETRIES = (0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0)  # seconds between attempts


class WorkerPool:
    """Executes up to `settings.workers` runs at once in this process."""

    def __init__(
        self, settings: Settings, storage: Storage, graphs: GraphRegistry, hub: StreamHub
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.graphs = graphs
        self.hub = hub
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: dict[str, str] = {}
        self._lease_ok: dict[str, float] = {}  # run id -> when its lease was last secured
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False
        self._next_sweep = 0.0

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start claiming (unless this process runs no workers) and reaping expired leases."""
        if not self.storage.shared:
            async with self.storage.tx() as tx:
                # SQLite holds an exclusive file lock, so every 'running' row is an orphan.
                orphans = await tx.requeue_expired(clock.now(), clock.iso(), all_running=True)
            for run in orphans:
                log.warning("re-queued run %s left running by a previous process", run["run_id"])
        self._background = [
            asyncio.create_task(self._heartbeat_loop(), name="keel-heartbeat"),
        ]
        if self.settings.workers > 0:
            self._background.append(asyncio.create_task(self._claim_loop(), name="keel-claim"))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give in-flight runs `grace` seconds, then release them."""
        self._stopping = True
        self._wakeup.set()
        for task in self._background:
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)

    def notify(self) -> None:
        self._wakeup.set()

    def cancel_local(self, run_id: str, action: str) -> bool:
        """Stop executing a run here (once: a second request changes nothing)."""
        task = self._tasks.get(run_id)
        if task is None:
            return False
        if run_id not in self._cancel_requested:
            self._cancel_requested[run_id] = action
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
                while len(self._tasks) < self.settings.workers:
                    run = await self._claim()
                    if run is None:
                        break
                    task = asyncio.create_task(self._execute(run), name=f"run-{run['run_id']}")
                    self._tasks[run["run_id"]] = task
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
                    run = await tx.claim_next(
                        self.worker_id, clock.iso(now), now + self.settings.lease_seconds
                    )
            except Conflict:  # another process claimed a run of the same thread just now
                continue
            if run is not None:
                self._lease_ok[run["run_id"]] = now
            return run
        return None

    async def _next_due_in(self, after: str) -> float | None:
        """Seconds until a pending run created for later than `after` becomes due, if any."""
        async with self.storage.read() as tx:
            due = await tx.next_pending_at(after)
        if due is None:
            return None
        return max(clock.parse(due) - clock.now(), 0.0) + 0.001

    async def _heartbeat_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._heartbeat()
                if failing:
                    log.warning("heartbeat recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("heartbeat failed: %s", exc)
                failing = True
            finally:
                self._fence()

    async def _heartbeat(self) -> None:
        """Renew leases, pick up cancellations stored by any process, reap expired leases."""
        await self._reap()
        if not self._tasks:
            return
        now = clock.now()
        async with self.storage.statements() as tx:
            rows = await tx.renew_leases(
                self.worker_id, list(self._tasks), now + self.settings.lease_seconds
            )
        for row in rows:
            run_id = row["run_id"]
            if row["status"] in TERMINAL:
                continue  # this worker recorded its end just now; its task is ending
            if row["worker_id"] != self.worker_id or row["status"] != "running":
                log.warning("run %s: lease lost to another worker; stopping here", run_id)
                self.cancel_local(run_id, LOST)
            elif row["cancel_action"]:
                self.cancel_local(run_id, row["cancel_action"])
            else:
                self._lease_ok[run_id] = now

    def _fence(self) -> None:
        """Stop runs whose lease could not be renewed in time (e.g. the database is away), so
        that no two workers ever execute one run: the reaper elsewhere waits for the full lease."""
        limit = clock.now() - self.settings.lease_seconds * FENCE_SHARE
        for run_id in list(self._tasks):
            if self._lease_ok.get(run_id, limit) < limit:
                log.warning("run %s: lease not renewed in time; handing it back", run_id)
                self.cancel_local(run_id, LOST)

    async def _reap(self) -> None:
        """Re-queue runs whose lease ran out (their executor died or lost track of them); now
        and then forget finished stateless runs."""
        now = clock.now()
        if now >= self._next_sweep:
            self._next_sweep = now + TEMPORARY_RUN_RETENTION / 2
            async with self.storage.tx() as tx:
                before = clock.iso(now - TEMPORARY_RUN_RETENTION)
                await tx.sweep_temporary_runs(before)
                await tx.sweep_thread_events(before)
        async with self.storage.statements() as tx:
            reaped = await tx.requeue_expired(
                clock.now(), clock.iso(), all_running=False, keep=list(self._tasks)
            )
            if reaped:
                await tx.notify(RUNS_CHANNEL, self.worker_id)
        for run in reaped:
            log.warning("re-queued run %s: its lease expired", run["run_id"])
        if reaped:
            self._wakeup.set()

    # -------------------------------------------------------------- execution
    async def _execute(self, run: Row) -> None:
        run_id = run["run_id"]
        try:
            await self._execute_inner(run)
        except asyncio.CancelledError:
            if run_id not in self._cancel_requested:
                raise  # shutdown
        except Exception:
            log.exception("run %s: bookkeeping failed; its lease will expire", run_id)
        finally:
            ch = self.hub.get(run_id)
            if ch is not None and ch.local:  # not recorded: subscribers look again
                self.hub.close(run_id, finished=False)
            self._tasks.pop(run_id, None)
            self._cancel_requested.pop(run_id, None)
            self._lease_ok.pop(run_id, None)
            self._wakeup.set()

    async def _execute_inner(self, run: Row) -> None:
        run_id = run["run_id"]
        ch = self.hub.open(run_id, run["thread_id"], await self._first_seq(run))
        flusher = Flusher(self.storage, ch, FLUSH_DELAY[self.storage.shared])
        self.hub.publish(ch, "metadata", dumps({"run_id": run_id, "attempt": run["attempt"]}))
        kwargs = run["kwargs"]

        def publish(name: str, data: Any) -> None:
            self.hub.publish(ch, name, dumps(data))
            flusher.schedule()

        translator = StreamTranslator(
            list(kwargs.get("stream_mode") or ["values"]), bool(kwargs.get("subgraphs")), publish
        )
        if run["attempt"] > self.settings.max_attempts:
            exc = RuntimeError(f"run abandoned after {run['attempt'] - 1} attempts")
            await self._finish(run, ch, flusher, "error", exc=exc)
            return
        deadline = asyncio.timeout(self.settings.run_timeout_seconds)
        try:
            async with deadline:
                state, status = await self._run_graph(run, translator)
        except asyncio.CancelledError:
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
        """The run's task was cancelled: shutdown, a lost lease, or a user's cancel."""
        action = self._cancel_requested.get(run["run_id"])
        if action is None:  # shutdown: hand the run back to the queue
            await self._release(run, ch, flusher)
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
        async with entry.build(
            config, storage.checkpointer, storage.store, "threads.create_run", context
        ) as graph:
            if run["attempt"] == 1:  # the root run's id is the run's (events, traces)
                config = {**config, "run_id": uuid.UUID(run["run_id"])}
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
        flusher.cancel()
        if cancel == "rollback":
            async with self.storage.tx() as tx:
                await tx.delete_run_checkpoints(thread_id, run_id)
                await tx.delete_run(run_id)
        if state is None and not run["temporary"]:
            state = await self._state_of(run)
        if not await self._record(run, ch, status, state, result, error, cancel):
            log.warning("run %s: finished after its lease was lost; not recorded", run_id)
            self.hub.close(run_id, finished=False)
            return
        ch.flushed = len(ch.events)
        ch.result = result
        self.hub.run_done(run_id, thread_id)

    async def _record(
        self,
        run: Row,
        ch: RunChannel,
        status: str,
        state: StateSnapshot | None,
        result: Any,
        error: Any,
        cancel: str | None,
    ) -> bool:
        """The terminal transaction: last events, status, thread. False if no longer ours.
        Retried while the database is away, until the lease fence gives up on the run."""
        for delay in FINISH_RETRIES:
            try:
                return await self._record_once(run, ch, status, state, result, error, cancel)
            except Unavailable as exc:
                log.warning("run %s: recording its end failed (%s); retrying", run["run_id"], exc)
                await asyncio.sleep(delay)
        return await self._record_once(run, ch, status, state, result, error, cancel)

    async def _record_once(
        self,
        run: Row,
        ch: RunChannel,
        status: str,
        state: StateSnapshot | None,
        result: Any,
        error: Any,
        cancel: str | None,
    ) -> bool:
        run_id, thread_id = run["run_id"], run["thread_id"]
        now = clock.iso()
        async with self.storage.tx() as tx:
            if cancel != "rollback":
                await tx.append_events(event_rows(ch, ch.unflushed()))
                if not await tx.finish_run(run_id, status, result, now, self.worker_id):
                    return False
            if run["temporary"]:
                await tx.delete_thread(thread_id, keep_runs=True)
            elif await settle_thread(tx, thread_id, status, state, error, now):
                await tx.notify(RUNS_CHANNEL, self.worker_id)  # the thread's next run is due
            await tx.notify(EVENTS_CHANNEL, f"{run_id} {thread_id} done")
        return True

    async def _release(self, run: Row, ch: RunChannel, flusher: Flusher) -> None:
        """Shutdown: save the run's events and put it back to pending for the next worker."""
        flusher.cancel()
        try:
            await flusher.flush()
            async with self.storage.tx() as tx:
                await tx.release_run(run["run_id"], self.worker_id, clock.iso())
                await tx.notify(RUNS_CHANNEL, self.worker_id)
        except Exception as exc:  # the lease runs out and the reaper re-queues it
            log.warning("run %s: not handed back (%s); its lease will expire", run["run_id"], exc)
        self.hub.close(run["run_id"], finished=False)

    async def _state_of(self, run: Row) -> StateSnapshot | None:
        """The thread's current state, for runs that ended without producing one."""
        config = jsonable(run["kwargs"]["config"])
        try:
            entry = self.graphs.get(config["configurable"]["graph_id"])
            storage = self.storage
            async with entry.build(config, storage.checkpointer, storage.store) as graph:
                return await graph.aget_state({"configurable": {"thread_id": run["thread_id"]}})
        except Exception:
            log.exception("run %s: reading the thread state failed", run["run_id"])
            return None


async def settle_thread(
    tx: Tx, thread_id: str, status: str, state: StateSnapshot | None, error: Any, now: str
) -> bool:
    """Record a finished run's outcome on its thread: status, values, interrupts, error.
    Returns whether more runs wait on the thread."""
    busy = bool(await tx.active_runs(thread_id))
    values = jsonable(state.values) if state is not None else None
    interrupts = thread_interrupts(state) if state is not None else {}
    if busy:
        thread_status = "busy"
    elif status in ("error", "timeout"):
        thread_status = "error"
    else:
        thread_status = "interrupted" if state is not None and state.next else "idle"
    await tx.set_thread_state(
        thread_id, status=thread_status, values=values, interrupts=interrupts, error=error, now=now
    )
    return busy




def event_rows(ch: RunChannel, events: list[Any]) -> list[tuple[str, int, str, str, bytes]]:
    return [(ch.run_id, e.seq, ch.thread_id, e.event, e.data) for e in events]


class Flusher:
    """Writes a run's new events to the database shortly after they are published."""

    def __init__(self, storage: Storage, ch: RunChannel, delay: float) -> None:
        self.storage = storage
        self.ch = ch
        self.delay = delay
        self._task: asyncio.Task[None] | None = None

    def schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.delay)
        try:
            await self.flush()
        except Exception as exc:  # kept in memory: the next flush or the finish writes them
            log.warning("run %s: saving events failed: %s", self.ch.run_id, exc)

    async def flush(self) -> None:
        pending = self.ch.unflushed()
        if not pending:
            return
        upto = self.ch.flushed + len(pending)
        ch = self.ch
        async with self.storage.tx() as tx:
            await tx.append_events(event_rows(ch, pending))
            await tx.notify(EVENTS_CHANNEL, f"{ch.run_id} {ch.thread_id} {pending[0].seq}")
        self.ch.flushed = max(self.ch.flushed, upto)

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
