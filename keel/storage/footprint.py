"""How much room the database takes, as each dialect measures it (`keel db stats`), and what
`keel db vacuum` did. The measurements themselves are `Storage.footprint` and `Storage.vacuum`."""

from __future__ import annotations

import dataclasses

# Tables by owner. Anything else found in the database (or in PostgreSQL's schema) is "other".
CHECKPOINT_TABLES = frozenset(
    {"checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
)
KEEL_TABLES = frozenset(
    {
        "keel_migrations",
        "assistants",
        "assistant_versions",
        "threads",
        "thread_events",
        "runs",
        "run_events",
        "webhook_deliveries",
        "crons",
        "api_keys",
        "audit_log",
        "quota_runs",
        "quota_rates",
    }
)


def table_group(name: str) -> str:
    """`keel` (Keel's own tables), `checkpoints` (LangGraph's saver), `store` (long-term memory)
    or `other` (not made by Keel)."""
    if name in CHECKPOINT_TABLES:
        return "checkpoints"
    if name.startswith("store_") or name == "store":
        return "store"
    if name in KEEL_TABLES:
        return "keel"
    return "other"


@dataclasses.dataclass
class TableSize:
    """One table: its bytes on disk with its indexes (None: this database cannot say), and on
    PostgreSQL the dead rows (deleted or updated) that no vacuum has cleared yet."""

    name: str
    bytes: int | None
    dead_rows: int | None = None

    @property
    def group(self) -> str:
        return table_group(self.name)


@dataclasses.dataclass
class Footprint:
    """The database's tables and its size on disk. SQLite also tells its free pages (inside the
    file, reused before it grows), its write-ahead log and its auto-vacuum mode."""

    tables: list[TableSize]
    total_bytes: int
    free_bytes: int | None = None
    wal_bytes: int | None = None
    auto_vacuum: str | None = None


@dataclasses.dataclass
class VacuumReport:
    """`keel db vacuum`: the database's size before and after, and what was done."""

    before_bytes: int
    after_bytes: int
    done: list[str]
