"""The audit log: an append-only table (`audit_log`) of who did what.

What is recorded, exactly one entry per audited request (by the HTTP edge, keel/http/auditing.py):
- every request refused by a protected route: status 401, 403, 404, 409, 413 or 429 (outcome
  `refused`);
- every successful (2xx) mutating request: POST, PUT, PATCH and DELETE, except the POSTs that only
  read (searches, counts, history; outcome `ok`);
and, outside HTTP, every key change made with `keel keys` (outcome `ok`).

Entries never hold secrets: no request headers or bodies are recorded at all, only the route,
the ids in its path (or the id a create answered with), the status and the `detail` of an error,
which is cut to `MAX_DETAIL` characters and scrubbed of anything shaped like a key or a bearer
token.

Writing: `record` queues the entry (stamped with the time) and returns; one background task per
process writes what is queued in batches, one transaction each, as soon as entries arrive, so a
burst costs one commit per batch rather than one per request. The queue is bounded
(`QUEUE_SIZE`): when it is full, `record` waits for room, so requests slow down rather than
entries being dropped. Reads through the server (`GET /keel/audit`) flush first; a clean
shutdown flushes. A crash (kill -9, power loss) loses the entries queued and not yet committed:
those of the last moments (one batch, a few milliseconds under normal load).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.auth.guard import AuditEntry
from keel.errors import InvalidInput
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

if TYPE_CHECKING:
    from keel.auth.keys import ApiKey

log = logging.getLogger("keel.audit")
OK = "ok"
REFUSED = "refused"
QUEUE_SIZE = 10_000
BATCH = 500
MAX_DETAIL = 500
STOP_SECONDS = 10.0
RETRIES = 3  # a batch failing for another reason than a lost database: then entry by entry
COLUMNS = "at, identity, org, action, resource_id, outcome, status, detail"
SECRETS = (
    (re.compile(r"keel_[0-9a-fA-F]{1,64}_[0-9a-zA-Z]+"), "keel_***"),
    (re.compile(r"(?i)(bearer|basic)\s+\S+"), r"\1 ***"),
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"), "***"),  # a JWT
)


def scrub(detail: str | None) -> str | None:
    """`detail` cut short, with anything that looks like a credential replaced."""
    if detail is None:
        return None
    text = detail[: MAX_DETAIL * 2]
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text[:MAX_DETAIL]


def _text(value: str | None) -> str | None:
    """Text any database takes (PostgreSQL refuses NUL characters: a path may hold `%00`)."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _values(at: str, e: AuditEntry) -> tuple[Any, ...]:
    texts = (e.identity, e.org, e.action, e.resource_id, e.outcome)
    return (at, *(_text(t) for t in texts), e.status, _text(scrub(e.detail)))


async def insert_entries(tx: Tx, entries: Sequence[tuple[str, AuditEntry]]) -> None:
    """Append (time, entry) pairs."""
    await tx.many(
        f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [_values(at, e) for at, e in entries],
    )


@dataclasses.dataclass(frozen=True)
class AuditQuery:
    """Which entries to read; `org` None: of every organisation (and of none)."""

    org: str | None = None
    since: str | None = None  # an ISO time (see `parse_since`)
    outcome: str | None = None
    limit: int = 100
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("org", "=", self.org),
            ("at", ">=", self.since),
            ("outcome", "=", self.outcome),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


async def read_entries(tx: Tx, query: AuditQuery) -> list[Row]:
    """The entries `query` selects, newest first."""
    where, params = query.where()
    return await tx.all(
        f"SELECT id, {COLUMNS} FROM audit_log {where} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    )


async def count_entries(tx: Tx, query: AuditQuery) -> int:
    where, params = query.where()
    row = await tx.one(f"SELECT COUNT(*) AS n FROM audit_log {where}", params)
    return int(row["n"]) if row is not None else 0


RELATIVE = re.compile(r"(\d+)([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str) -> str:
    """An ISO time (naive: UTC) or a span back from now (`30m`, `12h`, `7d`), as stored."""
    try:
        relative = RELATIVE.fullmatch(value.strip())
        if relative is not None:
            return clock.iso(clock.now() - int(relative.group(1)) * UNITS[relative.group(2)])
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return clock.iso(moment.timestamp())
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(
            f"since must be an ISO time or a span like 30m, 12h, 7d; got {value!r}"
        ) from None


class AuditLog:
    """The `AuditSink` writing to `audit_log` through a background batch writer."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._queue: asyncio.Queue[tuple[str, AuditEntry]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._queued = 0  # entries queued since start
        self._written = 0  # ... of which committed (or given up on)
        self._progress = asyncio.Event()

    async def record(self, entry: AuditEntry) -> None:
        at = clock.iso()
        if self._queue is None:  # not started (or stopped): write it now
            async with self.storage.tx() as tx:
                await insert_entries(tx, [(at, entry)])
            return
        self._queued += 1
        await self._queue.put((at, entry))

    async def flush(self) -> None:
        """Return once every entry recorded before the call is committed."""
        target = self._queued
        while self._written < target and self._writer is not None and not self._writer.done():
            progress = self._progress
            await progress.wait()

    async def start(self) -> None:
        if self._writer is None:
            self._queue = asyncio.Queue(QUEUE_SIZE)
            self._writer = asyncio.create_task(self._write_loop(), name="keel-audit-writer")

    async def stop(self) -> None:
        """Write what is queued (within `STOP_SECONDS`), then stop the writer."""
        writer = self._writer
        if writer is None:
            return
        try:
            await asyncio.wait_for(self.flush(), STOP_SECONDS)
        except TimeoutError:
            log.error("audit log: %d entries not written", self._queued - self._written)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        self._writer = self._queue = None

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await self._write(batch)
            self._written += len(batch)
            self._progress.set()
            self._progress = asyncio.Event()

    async def _write(self, batch: list[tuple[str, AuditEntry]]) -> None:
        """Commit `batch`, retrying while the database is unreachable (or busy). An entry the
        database refuses (it never should) is logged and skipped, not retried forever."""
        backoff, failures = 0.05, 0
        while True:
            try:
                async with self.storage.tx() as tx:
                    await insert_entries(tx, batch)
                return
            except Exception as exc:
                failures += 1
                if failures > RETRIES and not self.storage.is_unavailable(exc):
                    await self._write_each(batch)
                    return
                log.warning("audit log: writing %d entries failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _write_each(self, batch: list[tuple[str, AuditEntry]]) -> None:
        for item in batch:
            try:
                async with self.storage.tx() as tx:
                    await insert_entries(tx, [item])
            except Exception as exc:
                log.error("audit log: entry %r not written: %s", item[1], exc)


async def record_key_change(tx: Tx, action: str, key: ApiKey, actor: str) -> None:
    """`keel keys` changes, in the change's own transaction (the endpoints' are requests)."""
    detail = f"role {key.role}" + (f", name {key.name}" if key.name else "")
    entry = AuditEntry(action, OK, actor, key.org, key.key_id, None, detail)
    await insert_entries(tx, [(clock.iso(), entry)])
