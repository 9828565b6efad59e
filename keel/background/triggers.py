"""Sleep-time triggers (Keel's `background.triggers`, docs/sleep-time.md): background runs of a
named graph when a thread goes idle, after every N runs of a thread, or on a cron schedule.

- Arming happens in each run's terminal transaction (an `Endings` hook): `on_idle` moves the
  thread's due time to end + N seconds (so activity re-arms it and a busy thread never fires),
  `every_n_runs` counts successful runs and makes the trigger due at once on the Nth.
- Firing consumes the due state (a compare-and-set on its due time) and creates the background
  run in one transaction (`keel.background.firing`): a crash neither loses nor doubles it, and
  of several processes only one fires.
- One loop per process sleeps until the next due time (or a change in this process; with a
  shared database at most `poll_seconds`, for changes made by other processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid

from keel import clock
from keel.background.firing import SCHEDULE_SUBJECT, TRIGGER_KEY, Firing
from keel.crons import next_run
from keel.endings import RunEnd
from keel.errors import ConfigError, KeelError
from keel.graphs import GraphRegistry
from keel.run_config import CONTEXT_MIRRORED
from keel.runs import RunService
from keel.settings import Settings
from keel.settings.sleep_time import TriggerSpec
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

log = logging.getLogger("keel.background")
MAX_SLEEP = 30.0
RETICK = 0.05  # a change armed in this process may not be committed when the loop first looks
BATCH = 50  # due states read per tick
# Server-set keys of a run's configurable, not carried over to the trigger's run.
SERVER_KEYS = {"run_id", "thread_id", "graph_id", "assistant_id", "checkpoint_id", "checkpoint_ns"}
SERVER_KEYS |= {"checkpoint_map", CONTEXT_MIRRORED}


def carried_payload(run: Row) -> Row:
    """What a background run takes from the run that armed its trigger: the caller's own
    `configurable` keys (a `user_id`, say), not the server's."""
    configurable = ((run.get("kwargs") or {}).get("config") or {}).get("configurable") or {}
    kept = {
        k: v
        for k, v in configurable.items()
        if k not in SERVER_KEYS and not k.startswith(("__", "langgraph_"))
    }
    return {"configurable": kept}


def graph_of(run: Row) -> str | None:
    configurable = ((run.get("kwargs") or {}).get("config") or {}).get("configurable") or {}
    graph = configurable.get("graph_id")
    return graph if isinstance(graph, str) else None


def check_graphs(spec: TriggerSpec, graphs: GraphRegistry) -> None:
    """A trigger names graphs this process serves (or, to run, an assistant's UUID)."""
    key = f"background.triggers.{spec.name}"
    if spec.graph not in graphs and not _is_uuid(spec.graph):
        raise ConfigError(f"{key}.graph: no graph {spec.graph!r} in 'graphs'")
    unknown = [g for g in spec.watch if g not in graphs]
    if unknown:
        raise ConfigError(f"{key}.watch: no graphs {unknown} in 'graphs'")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class Triggers:
    """A process's sleep-time triggers: the arming hook and the firing loop."""

    def __init__(self, settings: Settings, storage: Storage, runs: RunService) -> None:
        self.specs = {t.name: t for t in settings.background.triggers}
        for spec in self.specs.values():
            check_graphs(spec, runs.graphs)
        self.storage = storage
        self.runs = runs
        self.poll = settings.poll_seconds if storage.shared else MAX_SLEEP
        self._wake = asyncio.Event()
        self._hint = math.inf  # the earliest due time armed in this process since the last tick
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ arming
    async def on_end(self, tx: Tx, end: RunEnd) -> None:
        """The `Endings` hook: arm the triggers watching the ended run's graph."""
        run = end.run
        if run.get("temporary") or TRIGGER_KEY in (run.get("metadata") or {}):
            return  # a stateless run's thread is gone; background runs never trigger
        graph = graph_of(run)
        now = clock.parse(end.now)
        for spec in self.specs.values():
            if spec.kind != "schedule" and spec.watches(graph):
                await self._arm(tx, spec, run, end.status, now)

    async def _arm(self, tx: Tx, spec: TriggerSpec, run: Row, status: str, now: float) -> None:
        thread_id, payload = run["thread_id"], carried_payload(run)
        if spec.kind == "on_idle":
            due = now + spec.idle_seconds
            await tx.arm_trigger(spec.name, thread_id, clock.iso(due), payload)
            self._hinted(due)
            return
        if status != "success":
            return
        if await tx.count_trigger_run(spec.name, thread_id, payload) >= spec.every_n_runs:
            await tx.due_at_once(spec.name, thread_id, clock.iso(now))
            self._hinted(now)

    def _hinted(self, due: float) -> None:
        self._hint = min(self._hint, due)
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def start(self) -> None:
        if not self.specs:
            return
        await self._plan_schedules()
        self._task = asyncio.create_task(self._loop(), name="keel-triggers")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _plan_schedules(self) -> None:
        """Each schedule trigger's next firing time, unless an earlier one is stored (a firing
        missed while every process was down is then due: it fires once, at start-up); a later
        one stored (the schedule was changed) is brought forward."""
        async with self.storage.tx() as tx:
            for spec in self.specs.values():
                if spec.kind != "schedule":
                    continue
                state = await tx.trigger_state(spec.name, SCHEDULE_SUBJECT)
                due = next_run(spec.schedule, None)
                stored = state["due_at"] if state is not None else None
                if due is not None and (stored is None or stored > due):  # new, or re-planned
                    await tx.arm_trigger(spec.name, SCHEDULE_SUBJECT, due, None)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            hint, self._hint = self._hint, math.inf
            try:
                while await self.tick() == BATCH:
                    pass
                delay = await self._delay(hint)
            except Exception:
                log.exception("sleep-time triggers: tick failed")
                delay = min(MAX_SLEEP, self.poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _delay(self, hint: float) -> float:
        async with self.storage.read() as tx:
            at = await tx.next_trigger_at()
        now = clock.now()
        delay = min(MAX_SLEEP, self.poll)
        if at is not None:
            delay = min(delay, max(0.0, clock.parse(at) - now))
        # Armed in this process since the last look, perhaps not committed when it looked: wake
        # at its due time anyway (or, when it is due already, again in a moment).
        return min(delay, max(hint - now, RETICK))

    async def tick(self) -> int:
        """Fire every due trigger state (a batch); returns how many states were due."""
        now = clock.now()
        async with self.storage.read() as tx:
            due = await tx.due_triggers(clock.iso(now), BATCH)
        for state in due:
            await self._fire(state, now)
        return len(due)

    async def _fire(self, state: Row, now: float) -> None:
        spec = self.specs.get(state["trigger_name"])
        firing = Firing(self.runs)
        try:
            async with self.storage.tx() as tx:
                if spec is None:  # no longer configured
                    await tx.drop_trigger_state(state["trigger_name"], state["subject"])
                    return
                await firing.fire(tx, spec, state, now)
        except KeelError as exc:
            log.warning("trigger %s: its run was not created: %s", state["trigger_name"], exc)
            await self._skip(state, spec, now)
            return
        if firing.created:
            self.runs.created(firing.cancelled, firing.created)

    async def _skip(self, state: Row, spec: TriggerSpec | None, now: float) -> None:
        """A firing that cannot create its run is consumed (not retried forever)."""
        following = None
        if spec is not None and spec.kind == "schedule":
            following = next_run(spec.schedule, None, now)
        async with self.storage.tx() as tx:
            await tx.take_trigger(state, following)
