"""bench/results/sizing.md from `python -m bench sizing`'s measurements (bench/sizing.py)."""

from __future__ import annotations

from typing import Any

from keel.storage.footprint import CHECKPOINT_TABLES

NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
LABELS = {
    "three": "3-node run",
    "six": "6-step run",
    "chat": "streamed chat turn",
    "approval": "interrupt/resume pair",
}
HEADER = (
    "| workload (per run) | events | checkpoints | threads | runs | run_events | checkpoint "
    "tables | total | after sweep |"
)


def kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def _bytes(tables: dict[str, dict[str, float]], names: set[str] | None = None) -> float:
    return sum(t["bytes"] for name, t in tables.items() if names is None or name in names)


def _row(result: dict[str, Any]) -> str:
    full, after = result["full"], result["after"]
    rows = [
        LABELS[result["workload"]],
        f"{full.get('run_events', {}).get('rows', 0):.0f}",
        f"{full.get('checkpoints', {}).get('rows', 0):.0f}",
        kib(_bytes(full, {"threads"})),
        kib(_bytes(full, {"runs"})),
        kib(_bytes(full, {"run_events"})),
        kib(_bytes(full, set(CHECKPOINT_TABLES))),
        f"**{kib(_bytes(full))}**",
        f"**{kib(_bytes(after))}**",
    ]
    return "| " + " | ".join(rows) + " |"


def table(results: list[dict[str, Any]]) -> list[str]:
    """The sizing table (also pasted into docs/retention.md)."""
    return [HEADER, "|" + "---|" * 9, *(_row(r) for r in results)]


def render(results: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    lines = [
        "# Sizing: bytes per run by workload",
        "",
        f"`python -m bench sizing` on {meta['date']}: {meta['runs']} runs of each workload, "
        f"{meta['clients']} clients at a time, each on a fresh database behind a real `keel "
        "serve`, measured with `keel db stats --json` (bench/sizing.py). Bytes are a table's "
        "with its indexes, per run (per pair for the interrupt/resume workload), as the run "
        "left them (*total*: event log kept) and once the sweeper removed the event logs "
        "(*after sweep*). PostgreSQL's tables are measured after VACUUM FULL: live rows, as "
        "SQLite's pages are (between vacuums they also hold dead row versions, which autovacuum "
        "makes reusable). *events* and *checkpoints* are rows per run.",
    ]
    for backend, found in results.items():
        lines += ["", f"## {NAMES[backend]}", "", *table(found)]
    lines += [
        "",
        "Checkpoint tables: SQLite `checkpoints` and `writes`; PostgreSQL `checkpoints`, "
        "`checkpoint_blobs` and `checkpoint_writes`.",
    ]
    return "\n".join(lines) + "\n"
