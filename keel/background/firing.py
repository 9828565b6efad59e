"""A trigger's firing: the background run it creates, in the transaction that consumes the
trigger's state (so a crash neither loses nor doubles it).

The run goes to a companion thread of its own, one per (trigger, source thread): the
conversation's thread stays free for the user (one running run per thread), the background
runs of one source are serialised and listed together, and the source thread's id is in the
run's input and metadata.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from keel import clock
from keel.auth.scope import Scope
from keel.crons import next_run
from keel.lanes import LANE_KEY
from keel.run_config import MAX_SECONDS, RunAccess
from keel.runs import RunService
from keel.settings.sleep_time import TriggerSpec
from keel.storage.tx import Row, Tx
from keel.tracing import TRACE_CONTEXT

log = logging.getLogger("keel.background")

TRIGGER_KEY = "keel_trigger"  # a background run's (and its companion thread's) metadata
SOURCE_KEY = "keel_source_thread_id"
SCHEDULE_SUBJECT = "*"  # a schedule trigger's own row (its next firing time)
NAMESPACE_SUBJECT = "ns:"  # subjects of a schedule over store namespaces
BUSY_RETRY = 1.0  # seconds before a trigger whose previous background run is still active


def companion_thread_id(trigger: str, subject: str) -> str:
    """The thread a trigger's background runs for `subject` run on (a stable id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"keel-trigger:{trigger}:{subject}"))


def utc_day(now: float) -> str:
    return clock.iso(now)[:10]


class Firing:
    """Fires one due trigger state in the caller's transaction."""

    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self.cancelled: list[Row] = []  # runs the creations cancelled: for `runs.created`
        self.created: list[Row] = []

    async def fire(self, tx: Tx, spec: TriggerSpec, state: Row, now: float) -> bool:
        """Consume the firing and create its background run(s); False if another process
        consumed it first."""
        if spec.kind == "schedule":
            return await self._schedule(tx, spec, state, now)
        if not await tx.take_trigger(state, None):
            return False
        source = await tx.get_thread(state["subject"])
        if source is None:  # the thread is gone
            await tx.drop_trigger_state(spec.name, state["subject"])
        elif spec.kind == "on_idle" and await tx.active_runs(state["subject"]):
            pass  # busy again: that run's end arms the trigger anew
        else:
            await self._one(tx, spec, state["subject"], source, state.get("payload"), now)
        return True

    async def _schedule(self, tx: Tx, spec: TriggerSpec, state: Row, now: float) -> bool:
        following = next_run(spec.schedule, None, now)
        if not await tx.take_trigger(state, following):
            return False
        select = spec.select
        if select.metadata is not None:
            for thread in await tx.threads_matching(select.metadata, select.limit):
                if TRIGGER_KEY not in (thread.get("metadata") or {}):
                    await self._one(tx, spec, thread["thread_id"], thread, None, now)
            return True
        prefix = ".".join(select.prefix or ())
        for ns in sorted(await tx.store_namespaces(prefix, now))[: select.limit]:
            await self._one(tx, spec, NAMESPACE_SUBJECT + ns, None, None, now)
        return True

    async def _one(
        self, tx: Tx, spec: TriggerSpec, subject: str, source: Row | None, payload: Any, now: float
    ) -> None:
        """One background run for `subject` (a thread, or a store namespace), within the
        budget and at most one active per (trigger, subject)."""
        companion = companion_thread_id(spec.name, subject)
        if await tx.active_runs(companion):
            if spec.kind != "schedule":  # try again once the previous one has ended
                due = clock.iso(now + max(spec.idle_seconds, BUSY_RETRY))
                await tx.arm_trigger(spec.name, subject, due, payload)
            return
        if not await tx.spend_trigger_budget(
            spec.name, subject, utc_day(now), spec.max_runs_per_day
        ):
            log.info("trigger %s: %s is over its daily budget; skipped", spec.name, subject)
            return
        body = background_body(spec, subject, source, payload)
        org = source.get("org") if source is not None else None
        access = RunAccess(threads=Scope(org=org)) if org is not None else RunAccess()
        # The root of the run's trace (keel.tracing); a refused creation is an error span.
        attributes = {"keel.trigger": spec.name, "keel.trigger.subject": subject}
        with self.runs.tracing.fired("trigger " + spec.name, attributes) as trace:
            if trace:
                body[TRACE_CONTEXT] = trace
            run, cancelled = await self.runs.create_in(tx, body, companion, access=access)
        self.created.append(run)
        self.cancelled += cancelled


def background_body(spec: TriggerSpec, subject: str, source: Row | None, payload: Any) -> Row:
    """The run-create body of a trigger's background run."""
    is_thread = not subject.startswith(NAMESPACE_SUBJECT)
    configurable = (payload or {}).get("configurable") or {}
    meta = {TRIGGER_KEY: spec.name, LANE_KEY: "background"}
    if is_thread:
        meta[SOURCE_KEY] = subject
    body: Row = {
        "assistant_id": spec.graph,
        "input": trigger_input(spec, subject, source),
        "metadata": meta,
        "config": {"configurable": configurable},
        "if_not_exists": "create",
        "multitask_strategy": "enqueue",
    }
    if spec.max_seconds is not None:
        body[MAX_SECONDS] = spec.max_seconds
    return body


def trigger_input(spec: TriggerSpec, subject: str, source: Row | None) -> Row:
    """What the background run receives: the trigger's name and its subject (the source
    thread's id, or a store namespace), with the thread's recent messages or its state."""
    if subject.startswith(NAMESPACE_SUBJECT):
        namespace = subject[len(NAMESPACE_SUBJECT) :].split(".")
        return {"trigger": spec.name, "namespace": namespace}
    out: Row = {"trigger": spec.name, "source_thread_id": subject}
    values = (source or {}).get("values") or {}
    if spec.input == "messages":
        messages = values.get("messages") if isinstance(values, dict) else None
        out["messages"] = list(messages or [])[-spec.max_messages :]
    elif spec.input == "state":
        out["values"] = values
    return out
