"""Threads: conversations whose state lives in checkpoints; CRUD, search, copy, prune."""

from __future__ import annotations

import re
import uuid
from typing import Any

from keel import clock
from keel.auth.scope import EVERYTHING, Scope
from keel.errors import BadRequest, Conflict, InvalidInput, NotFound
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
EXTRACT_ROOTS = ("values", "metadata", "config", "interrupts")
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]")


def ttl_view(thread: Row) -> Row | None:
    """`{strategy, ttl_minutes, expires_at}`; `expires_at` is null after a keep_latest prune
    until the thread changes again."""
    ttl = thread.get("ttl")
    if not ttl:
        return None
    due = thread.get("expires_at")
    return {
        "strategy": ttl.get("strategy", "delete"),
        "ttl_minutes": ttl["ttl"],
        "expires_at": None if due is None else clock.iso(due),
    }


def view(t: Row, include_ttl: bool = False) -> Row:
    """The Thread object. `error` and `interrupts` appear once a run or a state update has
    recorded the thread's state, as in the reference; `ttl` only when asked for and set."""
    out = {
        "thread_id": t["thread_id"],
        "created_at": t["created_at"],
        "updated_at": t["updated_at"],
        "state_updated_at": t.get("state_updated_at") or t["updated_at"],
        "metadata": t["metadata"],
        "status": t["status"],
        "config": t.get("config") or {},
        "values": t.get("values"),
    }
    if t.get("state_updated_at"):
        out["error"] = t.get("error")
        out["interrupts"] = t.get("interrupts") or {}
    ttl = ttl_view(t) if include_ttl else None
    if ttl is not None:
        out["ttl"] = ttl
    return out


def run_thread_config(assistant: Row, thread: Row, body_config: Row | None) -> Row:
    """The config a run leaves on its thread, as the reference keeps it: the assistant's config,
    the thread's, the run's, with `configurable` only from the assistant and the thread (the
    run's own configurable stays on the run). State reads and updates build graphs with it."""
    return {
        **(assistant.get("config") or {}),
        **(thread.get("config") or {}),
        **(body_config or {}),
        "configurable": {
            **((assistant.get("config") or {}).get("configurable") or {}),
            **((thread.get("config") or {}).get("configurable") or {}),
        },
    }


def extract_path(thread: Row, path: str) -> Any:
    root, _, rest = path.partition(".")
    root, bracket, tail = root.partition("[")
    if root not in EXTRACT_ROOTS:
        raise InvalidInput(f"extract path must start with one of {EXTRACT_ROOTS}: {path!r}")
    value: Any = thread.get(root)
    remainder = (bracket + tail + ("." + rest if rest else "")) if bracket else rest
    pos = 0
    while pos < len(remainder):
        match = _PATH_TOKEN.match(remainder, pos)
        if match is None:
            raise InvalidInput(f"invalid extract path {path!r}")
        pos = match.end()
        key, index = match.group(1), match.group(2)
        try:
            value = value[int(index)] if index is not None else value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


class ThreadService:
    """Threads as one caller may see them: every read and write is limited to `scope`."""

    def __init__(self, storage: Storage, scope: Scope = EVERYTHING) -> None:
        self.storage = storage
        self.scope = scope

    async def create(self, data: Row) -> Row:
        return (await self.create_new(data))[0]

    async def create_new(self, data: Row) -> tuple[Row, bool]:
        """Create the thread; with `if_exists=do_nothing` an existing one is returned instead
        (then the flag is False)."""
        now = clock.iso()
        thread_id = str(data.get("thread_id") or uuid.uuid4())
        thread: Row = {
            "thread_id": thread_id,
            "created_at": now,
            "updated_at": now,
            "metadata": data.get("metadata") or {},
            "config": {},
            "status": "idle",
            "values": None,
            "interrupts": {},
            "ttl": data.get("ttl") or self.storage.thread_ttl.for_new_thread(),
            "org": self.scope.org,
        }
        async with self.storage.tx() as tx:
            existing = await tx.get_thread(thread_id)
            if existing is not None:
                if not self.scope.admits(existing):
                    raise Conflict(f"Thread '{thread_id}' already exists")
                if data.get("if_exists") == "do_nothing":
                    return view(existing), False
                raise Conflict(f"Thread '{thread['thread_id']}' already exists")
            await tx.insert_thread(thread)
        return view(thread), True

    async def get(self, thread_id: str, include_ttl: bool = False) -> Row:
        async with self.storage.read() as tx:
            return view(await get_thread(tx, thread_id, self.scope), include_ttl)

    async def patch(self, thread_id: str, data: Row) -> Row:
        now = clock.iso()
        async with self.storage.tx() as tx:
            t = await get_thread(tx, thread_id, self.scope)
            meta = {**t["metadata"], **(data.get("metadata") or {})}
            await tx.update_thread_meta(thread_id, meta, data.get("ttl"), now)
            t = await get_thread(tx, thread_id)
        return view(t)

    async def delete(self, thread_id: str, cancel: Any) -> None:
        async with self.storage.read() as tx:
            await get_thread(tx, thread_id, self.scope)
            active = await tx.active_runs(thread_id)
        if active:
            await cancel(thread_id, [r["run_id"] for r in active], None, "interrupt")
        async with self.storage.tx() as tx:
            await tx.delete_thread(thread_id)

    def _where(self, q: Row) -> tuple[str, list[Any]]:
        scoped, params = self.scope.where(self.storage.dialect)
        clauses = [scoped]
        for column in ("metadata", "values"):
            if q.get(column):
                sql, p = self.storage.dialect.containment(f'"{column}"', q[column])
                clauses.append(sql)
                params.extend(p)
        if q.get("status"):
            clauses.append("status=?")
            params.append(q["status"])
        if q.get("ids"):
            ids = _thread_ids(q["ids"])
            clauses.append(f"thread_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        return " AND ".join(clauses), params

    async def search(self, q: Row) -> tuple[list[Row], bool]:
        where, params = self._where(q)
        sort_by = q.get("sort_by") or "updated_at"
        if sort_by not in SORTABLE:
            raise InvalidInput(f"Invalid sort_by: {sort_by}")
        order = f"{sort_by} {(q.get('sort_order') or 'desc').upper()}, thread_id"
        limit, offset = q.get("limit", 10), q.get("offset", 0)
        extract = q.get("extract") or {}
        if len(extract) > 10:
            raise InvalidInput("extract: at most 10 paths")
        async with self.storage.read() as tx:
            rows = await tx.search_threads(where, params, order, limit + 1, offset)
        items = [view(r) for r in rows[:limit]]
        if extract:
            for item in items:
                item["extracted"] = {k: extract_path(item, p) for k, p in extract.items()}
        return items, len(rows) > limit

    async def count(self, q: Row) -> int:
        where, params = self._where(q)
        async with self.storage.read() as tx:
            return await tx.count("threads", where, params)

    async def copy(self, thread_id: str) -> Row:
        now = clock.iso()
        new_id = str(uuid.uuid4())
        async with self.storage.tx() as tx:
            t = await get_thread(tx, thread_id, self.scope)
            copy = {**t, "thread_id": new_id, "created_at": now, "updated_at": now}
            if copy["status"] == "busy":
                copy["status"] = "idle"
            await tx.insert_thread(copy)
            await tx.copy_checkpoints(thread_id, new_id)
        return view(copy)

    async def prune(self, thread_ids: list[str], strategy: str, cancel: Any) -> int:
        pruned = 0
        for thread_id in thread_ids:
            async with self.storage.read() as tx:
                t = await tx.get_thread_in(thread_id, *self.scope.where(tx.dialect))
                active = await tx.active_runs(thread_id) if t is not None else []
            if t is None:
                continue
            if active:
                await cancel(thread_id, [r["run_id"] for r in active], None, "interrupt")
            async with self.storage.tx() as tx:
                if strategy == "delete":
                    await tx.delete_thread(thread_id)
                else:
                    await tx.keep_latest_checkpoint(thread_id)
            pruned += 1
        return pruned


def _thread_ids(ids: list[str]) -> list[str]:
    out = []
    for thread_id in ids:
        try:
            out.append(str(uuid.UUID(str(thread_id))))
        except ValueError:
            raise BadRequest(f"Invalid thread ID {thread_id}") from None
    return out


async def get_thread(tx: Tx, thread_id: str, scope: Scope = EVERYTHING) -> Row:
    """The thread, if it exists and is in `scope` (else 404: a hidden thread is not found)."""
    if scope.unrestricted:
        t = await tx.get_thread(thread_id)
    else:
        t = await tx.get_thread_in(thread_id, *scope.where(tx.dialect))
    if t is None:
        raise NotFound(f"Thread '{thread_id}' not found")
    return t
