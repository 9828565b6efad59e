"""Reading the recording graph's side table (tests/chaos/recording_graph.py) while it is written:
which processes are in the middle of a step, and which steps a dead process left unfinished."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def query(path: Path, sql: str, params: list[Any]) -> list[Any]:
    """Rows of the side table; none before the first step created it."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def in_step(path: Path, pids: list[int]) -> set[int]:
    """Which of these (live) processes are in the middle of a step right now."""
    if not pids:
        return set()
    marks = ",".join("?" * len(pids))
    sql = f"SELECT DISTINCT pid FROM executions WHERE ended IS NULL AND pid IN ({marks})"
    return {int(pid) for (pid,) in query(path, sql, list(pids))}


def cut_attempts(path: Path, pid: int) -> int:
    """Run attempts a dead process left in the middle of a step (it never recorded the step's
    end): its kill cut them, and each must be resumed by a later attempt."""
    sql = "SELECT DISTINCT run_id, attempt FROM executions WHERE ended IS NULL AND pid = ?"
    return len(query(path, sql, [pid]))


def finished(path: Path, run_ids: list[str], last_step: str) -> bool:
    """Whether every one of these runs has executed its last step to the end: a kill now can
    cut none of them."""
    ids = sorted(set(run_ids))
    if not ids:
        return True
    sql = (
        "SELECT COUNT(DISTINCT run_id) FROM executions"
        f" WHERE step = ? AND ended IS NOT NULL AND run_id IN ({','.join('?' * len(ids))})"
    )
    rows = query(path, sql, [last_step, *ids])
    return bool(rows) and int(rows[0][0]) == len(ids)
