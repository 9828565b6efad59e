"""Run lifecycle rules: create (with multitask strategies), cancel, and results."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from keel import clock
from keel.auth.scope import EVERYTHING, Scope
from keel.endings import Endings, RunEnd
from keel.errors import BadRequest, Conflict, NotFound
from keel.execution import RunResult
from keel.faults import Faults
from keel.graphs import GraphRegistry, system_assistant_id
from keel.lanes import lane_of
from keel.metrics.recorder import Recorder, graph_of
from keel.replay import live_channel
from keel.run_config import (
    MAX_SECONDS,
    OPEN,
    RunAccess,
    run_config,
    run_context,
    run_kwargs,
    run_metadata,
    without_auth_keys,
)
from keel.run_config import deep_merge as deep_merge  # keel.crons takes it from here
from keel.serde import loads
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx
from keel.streams import TERMINAL, Event, RunChannel, StreamHub
from keel.threads import run_thread_config
from keel.tracing import TRACE_CONTEXT, Tracing

STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
# Notification channels between processes sharing a database (see keel/relay.py).
RUNS_CHANNEL = "keel_runs"  # a run became claimable
CANCEL_CHANNEL = "keel_cancel"  # "<run_id> <action>": cancel a running run
EVENTS_CHANNEL = "keel_events"  # "<run_id> <thread_id> <first seq>|done": new events logged
THREAD_CHANNEL = "keel_thread"  # "<thread_id> <event_id>": a thread-level event was stored


def new_run_id() -> str:
    """Time-ordered ids (uuid7) so that runs sort by creation."""
    return str(uuid.uuid7()) if hasattr(uuid, "uuid7") else _uuid7()


def _uuid7() -> str:
    ms = int(clock.now() * 1000)
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


# Kept in a run's kwargs for the worker, not part of the reference's Run object.
PRIVATE_KWARGS = ("checkpoint", "on_disconnect", MAX_SECONDS, TRACE_CONTEXT)


def run_view(run: Row) -> Row:
    """The Run object as the API returns it (the reference's keys)."""
    kwargs = {k: v for k, v in run["kwargs"].items() if k not in PRIVATE_KWARGS}
    kwargs.setdefault("checkpoint_during", True)
    return {
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "assistant_id": run["assistant_id"],
        "created_at": run["created_at"],
        "updated_at": run["updated_at"],
        "status": run["status"],
        "metadata": run["metadata"],
        "kwargs": kwargs,
        "multitask_strategy": run["multitask_strategy"],
        "langsmith_session_name": None,
    }


class RunService:
    """Creates, cancels and awaits runs; the worker executes them."""

    def __init__(
        self,
        storage: Storage,
        graphs: GraphRegistry,
        hub: StreamHub,
        wake_workers: Callable[[], None],
        cancel_local: Callable[[str, str], bool],
        origin: str = "",
        faults: Faults | None = None,
        endings: Endings | None = None,
        recorder: Recorder | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.storage = storage
        self.endings = endings or Endings()
        self.recorder = recorder or Recorder()
        self.tracing = tracing or Tracing.off()  # spans of the runs Keel fires itself
        self.graphs = graphs
        self.hub = hub
        self.wake_workers = wake_workers
        self.cancel_local = cancel_local
        self.origin = origin  # this process's id in notifications (its own are ignored)
        self.faults = faults or Faults.from_env()
        # Called inside a creation's transaction with the run just inserted; may refuse it
        # (quotas: keel.auth.guard.Guard.admit_run), which rolls the creation back.
        self.admit: Callable[[Tx, Row], Awaitable[None]] | None = None

    # ----------------------------------------------------------------- create
    def assistant_uuid(self, assistant_id: str) -> str:
        """The id of the assistant a run names (a graph id names its system assistant)."""
        if assistant_id in self.graphs:
            return system_assistant_id(assistant_id)
        try:
            return str(uuid.UUID(assistant_id))
        except ValueError:
            raise self.graphs.invalid_assistant(assistant_id) from None

    def is_system_assistant(self, assistant_id: str) -> bool:
        """Whether `assistant_id` (see assistant_uuid) is a graph's system assistant: one every
        caller may run, without `assistants.read` (as the reference)."""
        return any(g.assistant_id == assistant_id for g in self.graphs)

    async def resolve_assistant(self, tx: Tx, assistant_id: Any, scope: Scope = EVERYTHING) -> Row:
        """The assistant a run uses; a non-system one must be in the caller's `scope`."""
        assistant_id = self.assistant_uuid(str(assistant_id))
        assistant = await tx.get_assistant(assistant_id)
        # Only system assistants are shared between organisations (keel.assistants.scope_sql).
        shared = self.is_system_assistant(assistant_id)
        hidden = assistant is not None and not (
            shared or dataclasses.replace(scope, shared=False).admits(assistant)
        )
        if assistant is None or hidden or assistant["graph_id"] not in self.graphs:
            raise NotFound(f"Assistant '{assistant_id}' not found")
        return assistant

    async def create(
        self,
        body: Row,
        thread_id: str | None,
        headers: Row | None = None,
        access: RunAccess = OPEN,
        run_id: str | None = None,
    ) -> Row:
        """Insert a pending run (and its thread when needed) in one transaction, for the user
        and within the scopes of `access`."""
        async with self.storage.tx() as tx:
            run, to_cancel = await self.create_in(tx, body, thread_id, headers, access, run_id)
        self.created(to_cancel, [run])
        return run

    async def create_in(
        self,
        tx: Tx,
        body: Row,
        thread_id: str | None,
        headers: Row | None = None,
        access: RunAccess = OPEN,
        run_id: str | None = None,
    ) -> tuple[Row, list[Row]]:
        """`create` inside the caller's transaction (a cron's firing, a trigger's claim: the
        run is created together with what the caller writes, or not at all). Returns the run
        and the runs it cancelled; once the transaction has committed, pass those (and the run)
        to `created`."""
        body = without_auth_keys(body)
        stateless = thread_id is None
        strategy = body.get("multitask_strategy") or "enqueue"
        now_ts = clock.now()
        now = clock.iso(now_ts)
        to_cancel: list[Row] = []
        assistant = await self.resolve_assistant(tx, body["assistant_id"], access.assistants)
        thread, tid = await self._thread_for_run(tx, body, thread_id, assistant, access)
        active = await tx.active_runs(tid)
        self._check_busy(strategy, active)
        self._check_resume(body, thread, active, stateless)
        thread = self._taken(thread, body, assistant)
        ids = (tid, run_id or new_run_id())
        run = self._build_run(body, assistant, thread, ids, now_ts, strategy, headers, access)
        run["temporary"] = stateless and body.get("on_completion", "delete") == "delete"
        run["kwargs"]["temporary"] = run["temporary"]  # as the reference: False for "keep"
        await tx.insert_run(run)
        await tx.mark_thread_busy(tid, thread["metadata"], thread["config"], now)
        if active and strategy in ("interrupt", "rollback"):
            to_cancel = await self._cancel_in_tx(tx, active, strategy, now)
        if self.admit is not None:  # last: its lock (quotas) is held the shortest
            await self.admit(tx, run)
        await tx.notify(RUNS_CHANNEL, self.origin)
        return run, to_cancel

    def created(self, cancelled: list[Row], runs: list[Row]) -> None:
        """After a creation committed: count the runs, signal the runs it cancelled and wake
        the workers."""
        for run in runs:
            self.recorder.run_created(graph_of(run))
        self._after_cancel(cancelled)
        self.wake_workers()

    async def _thread_for_run(
        self, tx: Tx, body: Row, thread_id: str | None, assistant: Row, access: RunAccess
    ) -> tuple[Row, str]:
        """The run's thread: an existing one in the caller's scope, or a new one (stateless, or
        `if_not_exists=create`) stamped with the caller's org."""
        if thread_id is not None:
            # Locked (thread, then runs): a TTL sweep or a delete deciding on this thread now
            # waits for this run, or finished before and the thread is gone.
            thread = await tx.get_thread(thread_id, lock=True)
            if thread is not None and access.threads.admits(thread):
                return thread, thread_id
            if thread is not None or body.get("if_not_exists", "reject") != "create":
                raise NotFound("Thread or assistant not found.")
        tid = thread_id or str(uuid.uuid4())
        meta = {
            "graph_id": assistant["graph_id"],
            "assistant_id": assistant["assistant_id"],
            **((body.get("config") or {}).get("metadata") or {}),
            **(body.get("metadata") or {}),
        }
        now = clock.iso()
        thread = {
            "thread_id": tid,
            "created_at": now,
            "updated_at": now,
            "metadata": meta,
            "config": run_thread_config(assistant, {}, body.get("config")),
            "status": "busy",
            "values": None,
            "interrupts": {},
            "ttl": self.storage.thread_ttl.for_new_thread(),
            "org": access.threads.org,
        }
        await tx.insert_thread(thread)
        return thread, tid

    @staticmethod
    def _taken(thread: Row, body: Row, assistant: Row) -> Row:
        """The thread as a new run leaves it: its graph and assistant in the metadata and, unless
        it is busy (as the reference), the config the run brings (`run_thread_config`)."""
        meta = {
            **thread["metadata"],
            "graph_id": assistant["graph_id"],
            "assistant_id": assistant["assistant_id"],
        }
        config = thread.get("config") or {}
        if thread["status"] != "busy":
            config = run_thread_config(assistant, thread, body.get("config"))
        return {**thread, "metadata": meta, "config": config}

    @staticmethod
    def _check_busy(strategy: str, active: list[Row]) -> None:
        if active and strategy == "reject":
            raise Conflict(
                "Thread is already running a task. Wait for it to finish or choose a "
                "different multitask strategy."
            )

    @staticmethod
    def _check_resume(body: Row, thread: Row, active: list[Row], stateless: bool) -> None:
        command = body.get("command") or {}
        if "resume" not in command:
            return
        if stateless:
            raise BadRequest("You must provide a thread_id when resuming.")
        # A thread left `error` by a failed resume still has its interrupt (in its checkpoint):
        # it may be answered again.
        waiting = thread["status"] in ("interrupted", "error") or thread.get("interrupts")
        if not active and not waiting:
            raise BadRequest("Cannot resume: the thread has no pending interrupt.")

    def _build_run(
        self,
        body: Row,
        assistant: Row,
        thread: Row,
        ids: tuple[str, str],
        now_ts: float,
        strategy: str,
        headers: Row | None,
        access: RunAccess,
    ) -> Row:
        config, checkpoint = run_config(body, assistant, thread, ids, headers, access.user)
        created = clock.iso(now_ts + float(body.get("after_seconds") or 0))
        kwargs = run_kwargs(body, config, run_context(body, assistant), checkpoint)
        metadata = run_metadata(body, assistant, thread)
        for private in (MAX_SECONDS, TRACE_CONTEXT):  # a trigger's budget; the trace to continue
            if body.get(private):
                kwargs[private] = body[private]
        return {
            "run_id": ids[1],
            "thread_id": ids[0],
            "assistant_id": assistant["assistant_id"],
            "created_at": created,
            "updated_at": created,
            "status": "pending",
            "metadata": metadata,
            "kwargs": kwargs,
            "multitask_strategy": strategy,
            "org": access.threads.org,
            "lane": lane_of(metadata),  # what the run's metadata says (keel.lanes)
        }

    # ----------------------------------------------------------------- cancel
    async def _cancel_in_tx(
        self, tx: Tx, runs: list[Row], action: str, now: str, delete_pending: bool = True
    ) -> list[Row]:
        """End pending runs at once (rolled back: deleted, unless `delete_pending` is False);
        flag running ones, and pending ones a worker claimed since they were read, for their
        worker. Returns the runs with their new status ('deleted', or 'running': flagged)."""
        touched = []
        for run in runs:
            ended = None
            if run["status"] == "pending":
                ended = await _end_pending(tx, run["run_id"], action, now, delete_pending)
                if ended == "interrupted":
                    await self.endings.record(tx, RunEnd(run, ended, now))
            if ended is None:
                await tx.set_cancel(run["run_id"], action)
                await tx.notify(CANCEL_CHANNEL, f"{run['run_id']} {action}")
                touched.append({**run, "status": "running", "cancel_action": action})
            else:  # followers in other processes: it is over
                await tx.notify(EVENTS_CHANNEL, f"{run['run_id']} {run['thread_id']} done")
                touched.append({**run, "status": ended})
        return touched

    def _after_cancel(self, runs: list[Row]) -> None:
        for run in runs:
            if run["status"] == "running":
                self.cancel_local(run["run_id"], run["cancel_action"])
            else:
                self.hub.close(run["run_id"])

    async def cancel(
        self,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: str | None,
        action: str,
        *,
        delete_pending: bool = True,
        scope: Scope = EVERYTHING,
    ) -> int:
        """Cancel matching pending/running runs on threads in `scope`; returns how many were
        cancelled."""
        now = clock.iso()
        async with self.storage.tx() as tx:
            if run_ids is not None:
                runs = [r for r in [await tx.get_run(rid) for rid in run_ids] if r is not None]
                runs = [r for r in runs if thread_id is None or r["thread_id"] == thread_id]
            else:
                wanted = ("pending", "running") if status in (None, "all") else (status,)
                runs = await tx.runs_by_status(wanted)
            runs = [r for r in runs if r["status"] in ("pending", "running")]
            runs = await _in_scope(tx, runs, scope)
            if not runs:
                return 0
            await self.faults.point("cancel-read", runs[0]["thread_id"], runs[0]["run_id"])
            for tid in sorted({r["thread_id"] for r in runs}):
                await tx.lock_thread(tid)
            touched = await self._cancel_in_tx(tx, runs, action, now, delete_pending)
            for tid in {r["thread_id"] for r in touched if r["status"] != "running"}:
                await self._settle_thread(tx, tid, now)
        self._after_cancel(touched)
        self.wake_workers()
        return len(touched)

    @staticmethod
    async def _settle_thread(tx: Tx, thread_id: str, now: str) -> None:
        """Thread status after pending runs were removed: busy if any remain, else as before."""
        if await tx.active_runs(thread_id):
            return
        thread = await tx.get_thread(thread_id)
        if thread is not None and thread["status"] == "busy":
            status = "interrupted" if thread.get("interrupts") else "idle"
            await tx.set_thread_status(thread_id, status, now)

    async def cancel_and_wait(self, run: Row, action: str) -> Awaitable[Any] | None:
        """`POST .../cancel?wait=1`: cancel one run and return what awaits its end (None if it
        was not pending or running). As in the reference, the request listens to the run from
        before the cancel: so a pending run is marked interrupted even when rolled back (not
        deleted), and the answer is what the run published from then on (`cancel_body`)."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        ch = await live_channel(self.storage, self.hub, run_id, thread_id)
        mark = ch.next_seq - 1 if ch is not None else 0
        if not await self.cancel(thread_id, [run_id], None, action, delete_pending=False):
            if ch is not None and not ch.local:  # it ended meanwhile: nothing to follow
                self.hub.close(run_id)
            return None
        return self._events_until_end(run, ch, mark)

    async def _events_until_end(self, run: Row, ch: RunChannel | None, mark: int) -> Any:
        """Follow a run until it is finished or gone; the cancel body of its events after
        `mark` (a run handed back to the queue meanwhile is followed into its next attempt)."""
        events: list[Event] = []
        while ch is not None:
            await ch.closed()
            events += [e for e in ch.events if e.seq > mark]
            mark = max(mark, ch.next_seq - 1)
            ch = await live_channel(self.storage, self.hub, run["run_id"], run["thread_id"])
        return cancel_body(events)

    # ------------------------------------------------------------------ wait
    async def wait(self, run: Row, *, joined: bool = False) -> Any:
        """Block until the run is terminal; return its wait/join body. A join finding the run
        already finished answers from the thread (as the reference does); otherwise the body
        is the one the run produced."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        while True:
            ch = await live_channel(self.storage, self.hub, run_id, thread_id)
            if ch is None:
                async with self.storage.read() as tx:
                    current = await tx.get_run(run_id)
                    thread = await tx.get_thread(thread_id)
                if current is None:
                    raise NotFound("Run not found")
                if current["status"] in TERMINAL:
                    return final_body(current, thread, joined)
                # Handed back to the queue: wait for its next attempt.
                ch = self.hub.watch(run_id, thread_id, 1)
            await ch.closed()
            if ch.result is not None:
                return ch.result
            # Closed without a result (cancelled, or handed back at shutdown): look again.


async def _in_scope(tx: Tx, runs: list[Row], scope: Scope) -> list[Row]:
    """The runs whose thread is in `scope`."""
    if scope.unrestricted or not runs:
        return runs
    visible = {
        tid for tid in {r["thread_id"] for r in runs} if await scope.covers(tx, "threads", tid)
    }
    return [r for r in runs if r["thread_id"] in visible]


async def _end_pending(tx: Tx, run_id: str, action: str, now: str, delete: bool) -> str | None:
    """End a pending run: its new status, or None if a worker claimed it since it was read."""
    if action == "rollback" and delete:
        return "deleted" if await tx.delete_pending_run(run_id) else None
    return "interrupted" if await tx.interrupt_pending(run_id, now) else None


def cancel_body(events: list[Event]) -> Any:
    """The reference's cancel-and-wait answer, from the run's events alone (no fallback to the
    thread): its error if it failed, else what a wait would answer from those events, else {}."""
    result = RunResult()
    for ev in events:
        if ev.event == "error":
            return {"__error__": loads(ev.data)}
        result.absorb(ev.event, loads(ev.data))
    return result.body(dict)


def final_body(run: Row, thread: Row | None, joined: bool = False) -> Any:
    """The body for a finished run: the one it produced, or for a join (and for a run that
    produced none) its thread's: the error, else the pending interrupts, else the values."""
    if (not joined or thread is None) and run.get("result") is not None:
        return run["result"]
    if thread is None:
        return {}
    if thread.get("status") == "error" and thread.get("error") is not None:
        return {"__error__": thread["error"]}
    if thread.get("status") == "interrupted":
        merged = [i for items in (thread.get("interrupts") or {}).values() for i in items]
        if merged:
            return {"__interrupt__": merged}
    return thread.get("values") or {}
