"""`keel db stats`: what the database holds and what retention will take away.

Rows and bytes per table (Keel's, LangGraph's checkpoints', the store's), the database's size
on disk (SQLite: file and write-ahead log, and its free pages), the oldest run, the oldest
finished run still holding its event log, and what the next sweep would remove
(`Sweeper.preview`). It reads the server's database while the server runs: on SQLite it shares
the file (WAL), on PostgreSQL it is one more client. Row counts are exact, each as of the moment
its table is read.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from keel.errors import KeelError
from keel.retention.sweeps import Sweeper
from keel.settings import Settings
from keel.storage import open_for_admin
from keel.storage.base import Storage
from keel.storage.footprint import Footprint

GROUPS = ("keel", "checkpoints", "store", "other")
SWEEP_LABELS = {
    "threads_deleted": "expired threads deleted",
    "threads_pruned": "expired threads pruned to their latest checkpoint",
    "run_logs_swept": "event logs of finished runs",
    "stateless_runs": "finished stateless runs",
    "thread_events": "thread-stream events",
    "store_items": "expired store items",
}


@dataclasses.dataclass
class TableStats:
    name: str
    group: str
    rows: int
    bytes: int | None  # None: this SQLite has no `dbstat` table
    dead_rows: int | None = None  # PostgreSQL: not yet vacuumed


@dataclasses.dataclass
class DatabaseStats:
    backend: str
    database: str
    total_bytes: int
    free_bytes: int | None
    wal_bytes: int | None
    auto_vacuum: str | None
    tables: list[TableStats]
    oldest_run: dict[str, Any] | None
    oldest_event_log: dict[str, Any] | None
    next_sweep: dict[str, int]

    @property
    def bytes_known(self) -> bool:
        return all(t.bytes is not None for t in self.tables)

    def table(self, name: str) -> TableStats:
        return next(t for t in self.tables if t.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "bytes_known": self.bytes_known}


async def collect(storage: Storage, settings: Settings, now: float | None = None) -> DatabaseStats:
    """The statistics of an open database; `now` (epoch seconds) is the sweep preview's clock."""
    footprint = await storage.footprint()
    async with storage.read() as tx:
        counts = {t.name: await tx.count_rows(t.name) for t in footprint.tables}
        oldest = await tx.oldest_run()
        kept = await tx.oldest_event_log()
    preview = await Sweeper(storage, settings).preview(now)
    return DatabaseStats(
        backend=settings.backend,
        database=display_name(settings),
        total_bytes=footprint.total_bytes,
        free_bytes=footprint.free_bytes,
        wal_bytes=footprint.wal_bytes,
        auto_vacuum=footprint.auto_vacuum,
        tables=_tables(footprint, counts),
        oldest_run=oldest,
        oldest_event_log=kept,
        next_sweep=preview.as_dict(),
    )


def _tables(footprint: Footprint, counts: dict[str, int]) -> list[TableStats]:
    tables = [
        TableStats(t.name, t.group, counts[t.name], t.bytes, t.dead_rows) for t in footprint.tables
    ]
    return sorted(tables, key=lambda t: (GROUPS.index(t.group), t.name))


def display_name(settings: Settings) -> str:
    """The database as the operator named it, without a password."""
    if settings.backend == "sqlite":
        return str(settings.sqlite_path)
    from keel.storage.postgres import redact

    return redact(settings.database)


async def open_existing(settings: Settings) -> Storage:
    """The server's database for `keel db`: never creates a SQLite file that is not there."""
    if settings.backend == "sqlite" and not settings.sqlite_path.exists():
        raise KeelError(f"no SQLite database at {str(settings.sqlite_path)!r} (see --database)")
    return await open_for_admin(settings)


async def stats_command(settings: Settings, args: Any) -> None:
    storage = await open_existing(settings)
    try:
        stats = await collect(storage, settings)
    finally:
        await storage.close()
    print(json.dumps(stats.as_dict(), indent=2) if args.json else render(stats))


def render(stats: DatabaseStats) -> str:
    lines = [f"database  {stats.database} ({stats.backend})", f"size      {_size_line(stats)}", ""]
    lines += _table_lines(stats)
    lines.append("")
    run, kept = stats.oldest_run, stats.oldest_event_log
    lines.append(
        "oldest run             "
        + (f"run {run['run_id']}, created {run['created_at']}" if run else "none")
    )
    lines.append(
        "oldest kept event log  "
        + (f"run {kept['run_id']}, ended {kept['ended_at']}" if kept else "none")
    )
    lines.append("the next sweep would remove:")
    lines += [f"  {stats.next_sweep[key]:>8}  {label}" for key, label in SWEEP_LABELS.items()]
    return "\n".join(lines + _notes(stats))


def _size_line(stats: DatabaseStats) -> str:
    line = f"{human(stats.total_bytes)} on disk"
    if stats.wal_bytes is not None:
        line += f" (write-ahead log {human(stats.wal_bytes)})"
    if stats.free_bytes is not None:
        line += f"; free pages {human(stats.free_bytes)}"
    if stats.auto_vacuum is not None:
        line += f"; auto-vacuum {stats.auto_vacuum}"
    return line


def _table_lines(stats: DatabaseStats) -> list[str]:
    dead = stats.backend == "postgres"
    header = ["TABLE", "GROUP", "ROWS", "BYTES", *(["DEAD ROWS"] if dead else [])]
    cells = [
        [
            t.name,
            t.group,
            str(t.rows),
            "?" if t.bytes is None else human(t.bytes),
            *([str(t.dead_rows if t.dead_rows is not None else "-")] if dead else []),
        ]
        for t in stats.tables
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    out = []
    for row in [header, *cells]:
        left = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        right = [value.rjust(widths[i + 2]) for i, value in enumerate(row[2:])]
        out.append("  ".join(left + right).rstrip())
    return out


def _notes(stats: DatabaseStats) -> list[str]:
    notes = []
    if not stats.bytes_known:
        notes.append("bytes per table unknown: this SQLite was built without the dbstat table")
    if stats.auto_vacuum not in (None, "incremental"):
        notes.append(
            "this file predates incremental auto-vacuum: freed pages are reused but never given "
            "back; stop the server and run `keel db vacuum` to convert it"
        )
    return [""] + [f"note: {n}" for n in notes] if notes else []


def human(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
