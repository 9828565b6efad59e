"""Crons: stored schedules that create runs (CRUD, search); `scheduler.py` fires them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keel import clock
from keel.assistants import scope_sql
from keel.auth.scope import EVERYTHING, Scope
from keel.auth.user import User
from keel.cron_schedule import CronSchedule, timezone
from keel.errors import BadRequest, InvalidInput, NotFound
from keel.run_config import AUTH_KEYS, auth_configurable, without_auth_keys
from keel.runs import RunService
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx
from keel.threads import get_thread

SORTABLE = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "next_run_date",
    "end_time",
    "created_at",
    "updated_at",
}
# The Cron object's fields, which a search's `select` may name.
SELECTABLE = (
    "cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule",
    "timezone", "created_at", "updated_at", "user_id", "payload", "next_run_date", "metadata",
    "enabled",
)  # fmt: skip
# Fields of a cron body that describe the cron itself; everything else is the run payload.
CRON_FIELDS = {"schedule", "end_time", "enabled", "timezone", "on_run_completed", "metadata"}


def view(c: Row) -> Row:
    out = {k: c[k] for k in c if k != "org"}
    out["enabled"] = bool(c["enabled"])
    return out


def utc_iso(value: str | None, what: str = "end_time") -> str | None:
    """An ISO-8601 timestamp normalised to Keel's UTC form (naive values are UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what}: invalid ISO-8601 timestamp {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clock.iso(moment.timestamp())


def next_run(schedule: str, tz: str | None, after: float | None = None) -> str | None:
    moment = datetime.fromtimestamp(clock.now() if after is None else after, UTC)
    found = CronSchedule.parse(schedule).next_after(moment, tz)
    return None if found is None else clock.iso(found.timestamp())


def as_user(payload: Row, user: User | None) -> Row:
    """A run payload whose runs run as `user` (auth on: None leaves it as it is): the user in
    `config.configurable` as runs carry it, whatever the client put there; the scheduler
    passes it to the runs (keel.scheduler)."""
    if user is None:
        return payload
    payload = without_auth_keys(payload)
    config = dict(payload.get("config") or {})
    configurable = {**(config.get("configurable") or {}), **auth_configurable(user)}
    return {**payload, "config": {**config, "configurable": configurable}}


def run_payload(data: Row) -> Row:
    """The run part of a cron body (everything but the cron's own fields)."""
    return {k: v for k, v in data.items() if k not in CRON_FIELDS}


def new_cron(data: Row, thread_id: str | None, assistant_id: str, now: str) -> Row:
    """A cron row from a create body (its id new, no creator yet)."""
    return {
        "cron_id": str(uuid.uuid4()),
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "on_run_completed": None if thread_id else data.get("on_run_completed") or "delete",
        "end_time": utc_iso(data.get("end_time")),
        "schedule": data["schedule"],
        "timezone": data.get("timezone"),
        "created_at": now,
        "updated_at": now,
        "payload": {**run_payload(data), "assistant_id": assistant_id},
        "user_id": None,
        "next_run_date": next_run(data["schedule"], data.get("timezone")),
        "metadata": data.get("metadata") or {},
        "enabled": data.get("enabled", True) is not False,
    }


class CronService:
    """Crons as one caller may see them: every read and write is limited to `scope`; `user`
    (auth on) is whom the crons it creates run as."""

    def __init__(
        self,
        storage: Storage,
        runs: RunService,
        on_change: Callable[[], None] | None = None,
        scope: Scope = EVERYTHING,
        user: User | None = None,
    ) -> None:
        self.storage = storage
        self.runs = runs
        self.on_change = on_change or (lambda: None)
        self.scope = scope
        self.user = user

    async def create(
        self,
        data: Row,
        thread_id: str | None,
        *,
        cron_id: str | None = None,
        assistant_scope: Scope = EVERYTHING,
        thread_scope: Scope = EVERYTHING,
    ) -> Row:
        """A new cron; its assistant must be in `assistant_scope` and its thread (if any) in
        `thread_scope` (else 404, as if they did not exist)."""
        timezone(data.get("timezone"))
        now = clock.iso()
        async with self.storage.tx() as tx:
            assistant = await self.runs.resolve_assistant(tx, str(data["assistant_id"]))
            await self._visible_assistant(tx, assistant["assistant_id"], assistant_scope)
            if thread_id is not None:
                await get_thread(tx, thread_id, thread_scope)
            cron = new_cron(data, thread_id, assistant["assistant_id"], now)
            cron.update(
                cron_id=cron_id or cron["cron_id"],
                payload=as_user(cron["payload"], self.user),
                user_id=None if self.user is None else self.user.identity,
                org=self.scope.org,
            )
            await tx.insert_cron(cron)
        self.on_change()
        return view(cron)

    async def _visible_assistant(self, tx: Tx, assistant_id: str, scope: Scope) -> None:
        if scope.unrestricted:
            return
        where = scope_sql(scope, self.runs.graphs, tx.dialect)
        if not await tx.in_scope("assistants", assistant_id, *where):
            raise NotFound(f"Assistant '{assistant_id}' not found")

    async def _get(self, tx: Tx, cron_id: str) -> Row:
        if self.scope.unrestricted:
            cron = await tx.get_cron(cron_id)
        else:
            cron = await tx.get_cron_in(cron_id, *self.scope.where(tx.dialect))
        if cron is None:
            raise NotFound(f"Cron '{cron_id}' not found")
        return cron

    async def get(self, cron_id: str) -> Row:
        async with self.storage.read() as tx:
            return view(await self._get(tx, cron_id))

    async def delete(self, cron_id: str) -> None:
        async with self.storage.tx() as tx:
            await self._get(tx, cron_id)
            if not await tx.delete_cron(cron_id):
                raise NotFound(f"Cron '{cron_id}' not found")
        self.on_change()

    async def patch(self, cron_id: str, data: Row) -> Row:
        if not data:
            raise BadRequest("Cron update needs at least one field")
        if self.user is not None:
            data = without_auth_keys(data)
        async with self.storage.tx() as tx:
            cron = apply_patch(await self._get(tx, cron_id), data)
            await tx.update_cron(cron)
        self.on_change()
        return view(cron)

    async def search(self, q: Row, thread_scope: Scope = EVERYTHING) -> tuple[list[Row], bool]:
        """Crons matching `q`; those on a thread outside `thread_scope` are left out."""
        where, params = self._where(q, thread_scope)
        sort_by = q.get("sort_by") or "created_at"
        if sort_by not in SORTABLE:
            raise InvalidInput(f"sort_by: must be one of {sorted(SORTABLE)}")
        order = search_order(sort_by, q.get("sort_order") == "asc")
        limit, offset = q.get("limit", 10), q.get("offset", 0)
        async with self.storage.read() as tx:
            rows = await tx.search_crons(where, params, order, limit + 1, offset)
        return [view(r) for r in rows[:limit]], len(rows) > limit

    async def count(self, q: Row, thread_scope: Scope = EVERYTHING) -> int:
        where, params = self._where(q, thread_scope)
        async with self.storage.read() as tx:
            return await tx.count("crons", where, params)

    def _where(self, q: Row, thread_scope: Scope) -> tuple[str, list[Any]]:
        dialect = self.storage.dialect
        scoped, params = self.scope.where(dialect)
        clauses = [scoped]
        for column in ("assistant_id", "thread_id"):
            if q.get(column) is not None:
                clauses.append(f"{column}=?")
                params.append(q[column])
        if q.get("enabled") is not None:
            clauses.append("enabled=?")
            params.append(int(bool(q["enabled"])))
        if q.get("metadata"):
            sql, p = dialect.containment("metadata", q["metadata"])
            clauses.append(sql)
            params.extend(p)
        if not thread_scope.unrestricted:
            sql, p = thread_scope.where(dialect, "t")
            clauses.append(
                "(crons.thread_id IS NULL OR EXISTS (SELECT 1 FROM threads t "
                f"WHERE t.thread_id = crons.thread_id AND {sql}))"
            )
            params.extend(p)
        return " AND ".join(clauses), params


def search_order(sort_by: str, ascending: bool) -> str:
    """ORDER BY for a search, as the reference sorts: a missing date first in ascending order
    (and last in descending), a missing id (a stateless cron's thread) the other way round; ties
    in creation order. The same on both backends (their NULL orders differ)."""
    direction = "ASC" if ascending else "DESC"
    nulls_first = ascending == (sort_by not in ("cron_id", "assistant_id", "thread_id"))
    return (
        f"{sort_by} {direction} NULLS {'FIRST' if nulls_first else 'LAST'}, "
        "created_at ASC, cron_id ASC"
    )


def apply_patch(cron: Row, data: Row) -> Row:
    """The cron with `data` applied, as the reference: metadata merged, the run payload merged
    key by key (a field given replaces the stored one; the creator in `configurable` stays),
    `end_time: null` clears it; the next run is recomputed when a schedule or a time zone is
    given, and (Keel's choice) when a re-enabled cron's next slot passed while disabled."""
    out = dict(cron)
    for key in ("schedule", "timezone", "enabled", "on_run_completed"):
        if data.get(key) is not None:  # validated below, when the next run is recomputed
            out[key] = data[key]
    if "end_time" in data:
        out["end_time"] = utc_iso(data["end_time"])
    out["metadata"] = {**cron["metadata"], **(data.get("metadata") or {})}
    out["payload"] = merged_payload(cron["payload"], run_payload(data))
    out["enabled"] = bool(out["enabled"])
    now = clock.now()
    rescheduled = data.get("schedule") is not None or data.get("timezone") is not None
    reenabled = out["enabled"] and not cron["enabled"] and _passed(cron["next_run_date"], now)
    if rescheduled or reenabled:
        out["next_run_date"] = next_run(out["schedule"], out["timezone"], now)
    out["updated_at"] = clock.iso(now)
    return out


def _passed(moment: str | None, now: float) -> bool:
    return moment is not None and clock.parse(moment) <= now


def merged_payload(stored: Row, given: Row) -> Row:
    """A stored run payload with the patch's run fields replacing its own (a shallow merge, as
    the reference); its assistant and the creator its `configurable` carries are kept."""
    out = {**stored, **given, "assistant_id": stored["assistant_id"]}
    kept = {
        k: v
        for k, v in ((stored.get("config") or {}).get("configurable") or {}).items()
        if k in AUTH_KEYS
    }
    if kept and "config" in given:
        config = dict(out.get("config") or {})
        config["configurable"] = {**(config.get("configurable") or {}), **kept}
        out["config"] = config
    return out


def run_body(cron: Row) -> Row:
    """The run a cron's firing creates: its payload, with the cron's metadata and id in the
    run's metadata (the reference merges the metadata; `cron_id` there is Keel's, to find a
    cron's runs), its id in `configurable` as the reference (unless the payload sends a
    `context`: the two cannot go together), and for a stateless cron `on_completion` from
    `on_run_completed`."""
    body: Row = copy.deepcopy(dict(cron["payload"]))
    metadata = {**cron["metadata"], **(body.get("metadata") or {})}
    body["metadata"] = {**metadata, "cron_id": cron["cron_id"]}
    if not body.get("context"):
        config = body.setdefault("config", {})
        config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron["cron_id"]}
    if cron["thread_id"] is None:
        body["on_completion"] = cron["on_run_completed"] or "delete"
    return body
