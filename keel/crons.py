"""Crons: stored schedules that create runs (CRUD, search); `scheduler.py` fires them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keel import clock
from keel.cron_schedule import CronSchedule, timezone
from keel.errors import BadRequest, InvalidInput, NotFound
from keel.runs import RunService, deep_merge
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

SORTABLE = {
    "cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"
}
# Fields of a cron body that describe the cron itself; everything else is the run payload.
CRON_FIELDS = {"schedule", "end_time", "enabled", "timezone", "on_run_completed", "metadata"}


def view(c: Row) -> Row:
    out = {k: c[k] for k in c}
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


class CronService:
    def __init__(
        self, storage: Storage, runs: RunService, on_change: Callable[[], None] | None = None
    ) -> None:
        self.storage = storage
        self.runs = runs
        self.on_change = on_change or (lambda: None)

    async def create(self, data: Row, thread_id: str | None) -> Row:
        timezone(data.get("timezone"))
        now = clock.iso()
        payload = {k: v for k, v in data.items() if k not in CRON_FIELDS}
        async with self.storage.tx() as tx:
            assistant = await self.runs.resolve_assistant(tx, str(data["assistant_id"]))
            if thread_id is not None and await tx.get_thread(thread_id) is None:
                raise NotFound(f"Thread '{thread_id}' not found")
            cron = {
                "cron_id": str(uuid.uuid4()),
                "assistant_id": assistant["assistant_id"],
                "thread_id": thread_id,
                "on_run_completed": (
                    None if thread_id else data.get("on_run_completed") or "delete"
                ),
                "end_time": utc_iso(data.get("end_time")),
                "schedule": data["schedule"],
                "timezone": data.get("timezone"),
                "created_at": now,
                "updated_at": now,
                "payload": {**payload, "assistant_id": assistant["assistant_id"]},
                "user_id": None,
                "next_run_date": next_run(data["schedule"], data.get("timezone")),
                "metadata": data.get("metadata") or {},
                "enabled": data.get("enabled", True) is not False,
            }
            await tx.insert_cron(cron)
        self.on_change()
        return view(cron)

    async def _get(self, tx: Tx, cron_id: str) -> Row:
        cron = await tx.get_cron(cron_id)
        if cron is None:
            raise NotFound(f"Cron '{cron_id}' not found")
        return cron

    async def get(self, cron_id: str) -> Row:
        async with self.storage.read() as tx:
            return view(await self._get(tx, cron_id))

    async def delete(self, cron_id: str) -> None:
        async with self.storage.tx() as tx:
            if not await tx.delete_cron(cron_id):
                raise NotFound(f"Cron '{cron_id}' not found")
        self.on_change()

    async def patch(self, cron_id: str, data: Row) -> Row:
        if not data:
            raise BadRequest("Cron update needs at least one field")
        async with self.storage.tx() as tx:
            cron = apply_patch(await self._get(tx, cron_id), data)
            await tx.update_cron(cron)
        self.on_change()
        return view(cron)

    async def search(self, q: Row) -> tuple[list[Row], bool]:
        where, params = self._where(q)
        sort_by = q.get("sort_by") or "created_at"
        if sort_by not in SORTABLE:
            raise InvalidInput(f"sort_by: must be one of {sorted(SORTABLE)}")
        order = f"{sort_by} {'ASC' if q.get('sort_order') == 'asc' else 'DESC'}"
        limit, offset = q.get("limit", 10), q.get("offset", 0)
        async with self.storage.read() as tx:
            rows = await tx.search_crons(where, params, order, limit + 1, offset)
        return [view(r) for r in rows[:limit]], len(rows) > limit

    async def count(self, q: Row) -> int:
        where, params = self._where(q)
        async with self.storage.read() as tx:
            return await tx.count("crons", where, params)

    def _where(self, q: Row) -> tuple[str, list[Any]]:
        clauses, params = ["1=1"], []
        for column in ("assistant_id", "thread_id"):
            if q.get(column) is not None:
                clauses.append(f"{column}=?")
                params.append(q[column])
        if q.get("enabled") is not None:
            clauses.append("enabled=?")
            params.append(int(bool(q["enabled"])))
        if q.get("metadata"):
            sql, p = self.storage.dialect.containment("metadata", q["metadata"])
            clauses.append(sql)
            params.extend(p)
        return " AND ".join(clauses), params


def apply_patch(cron: Row, data: Row) -> Row:
    """The cron with `data` applied: metadata and payload merged, the next run recomputed."""
    out = dict(cron)
    for key in ("schedule", "timezone", "enabled"):
        if key in data:
            out[key] = data[key]
    if "end_time" in data:
        out["end_time"] = utc_iso(data["end_time"])
    if "on_run_completed" in data and cron["thread_id"] is None:
        out["on_run_completed"] = data["on_run_completed"] or "delete"
    out["metadata"] = {**cron["metadata"], **(data.get("metadata") or {})}
    payload = {k: v for k, v in data.items() if k not in CRON_FIELDS}
    out["payload"] = deep_merge(dict(cron["payload"]), payload)
    timezone(out["timezone"])
    out["next_run_date"] = next_run(out["schedule"], out["timezone"])
    out["updated_at"] = clock.iso()
    out["enabled"] = bool(out["enabled"])
    return out
