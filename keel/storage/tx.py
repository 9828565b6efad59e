"""Named queries, run inside one transaction. Values are always bound, never formatted in."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from keel.serde import dumps, loads

Row = dict[str, Any]
JSON_COLUMNS = {
    "config",
    "context",
    "metadata",
    "values",
    "interrupts",
    "error",
    "ttl",
    "kwargs",
    "result",
    "payload",
}

ASSISTANT_COLS = (
    "assistant_id, graph_id, config, context, metadata, name, description, version, "
    "created_at, updated_at"
)
ACTIVE = ("pending", "running")
CRON_COLS = (
    "cron_id, assistant_id, thread_id, on_run_completed, end_time, schedule, timezone, "
    "created_at, updated_at, payload, user_id, next_run_date, metadata, enabled"
)


def decode_row(description: Any, row: tuple[Any, ...]) -> Row:
    """A row as a dict, with Keel's JSON columns decoded."""
    out: Row = {}
    for (name, *_), value in zip(description, row, strict=True):
        out[name] = loads(value) if name in JSON_COLUMNS and value is not None else value
    return out


def j(value: Any) -> str:
    return dumps(value).decode()


def _json_path(key: str) -> str:
    if '"' in key or "\\" in key:
        raise ValueError(f"unsupported filter key {key!r}")
    return f'$."{key}"'


def containment(column: str, filt: dict[str, Any], prefix: str = "$") -> tuple[str, list[Any]]:
    """SQL for "column's JSON object contains `filt`" (nested objects recurse)."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filt.items():
        path = prefix + _json_path(key)[1:]
        if isinstance(value, dict) and value:
            sub, sub_params = containment(column, value, path)
            clauses.append(sub)
            params.extend(sub_params)
        elif value is None:
            clauses.append(f"json_type({column}, ?) = 'null'")
            params.append(path)
        elif isinstance(value, (dict, list)):
            clauses.append(f"json_extract({column}, ?) = json(?)")
            params.extend([path, j(value)])
        elif isinstance(value, bool):
            clauses.append(f"json_type({column}, ?) = ?")
            params.extend([path, "true" if value else "false"])
        else:
            clauses.append(f"json_extract({column}, ?) = ?")
            params.extend([path, value])
    return (" AND ".join(clauses) or "1=1"), params


class Tx:
    """One transaction's worth of named queries over Keel's tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self.conn.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else decode_row(cur.description, row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self.conn.execute(sql, params)
        desc = cur.description
        return [decode_row(desc, row) for row in cur.fetchall()]

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    # ---------------------------------------------------------------- assistants
    @staticmethod
    def _assistant_body(a: Row) -> list[Any]:
        """graph_id, config, context, metadata, name, description, in column order."""
        return [
            a["graph_id"],
            j(a["config"]),
            j(a["context"]),
            j(a["metadata"]),
            a["name"],
            a["description"],
        ]

    async def insert_assistant(self, a: Row) -> None:
        await self.run(
            f"INSERT INTO assistants ({ASSISTANT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                a["assistant_id"],
                *self._assistant_body(a),
                a["version"],
                a["created_at"],
                a["updated_at"],
            ],
        )
        await self.insert_assistant_version(a)

    async def insert_assistant_version(self, a: Row) -> None:
        await self.run(
            "INSERT INTO assistant_versions (assistant_id, graph_id, config, context, metadata, "
            "name, description, version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [a["assistant_id"], *self._assistant_body(a), a["version"], a["updated_at"]],
        )

    async def update_assistant(self, a: Row) -> None:
        await self.run(
            "UPDATE assistants SET graph_id=?, config=?, context=?, metadata=?, name=?, "
            "description=?, version=?, updated_at=? WHERE assistant_id=?",
            [*self._assistant_body(a), a["version"], a["updated_at"], a["assistant_id"]],
        )

    async def get_assistant(self, assistant_id: str) -> Row | None:
        return await self.one(
            f"SELECT {ASSISTANT_COLS} FROM assistants WHERE assistant_id=?", [assistant_id]
        )

    async def delete_assistant(self, assistant_id: str) -> int:
        await self.run("DELETE FROM assistant_versions WHERE assistant_id=?", [assistant_id])
        await self.run("DELETE FROM crons WHERE assistant_id=?", [assistant_id])
        return await self.run("DELETE FROM assistants WHERE assistant_id=?", [assistant_id])

    async def max_assistant_version(self, assistant_id: str) -> int:
        row = await self.one(
            "SELECT MAX(version) AS v FROM assistant_versions WHERE assistant_id=?",
            [assistant_id],
        )
        return int(row["v"]) if row and row["v"] is not None else 0

    async def get_assistant_version(self, assistant_id: str, version: int) -> Row | None:
        return await self.one(
            "SELECT * FROM assistant_versions WHERE assistant_id=? AND version=?",
            [assistant_id, version],
        )

    async def search_assistants(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT {ASSISTANT_COLS} FROM assistants WHERE {where} ORDER BY {order} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def count(self, table: str, where: str, params: list[Any]) -> int:
        row = await self.one(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)
        return int(row["n"]) if row else 0

    async def list_assistant_versions(
        self, where: str, params: list[Any], limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT * FROM assistant_versions WHERE {where} ORDER BY version DESC "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    # ------------------------------------------------------------------- threads
    async def insert_thread(self, t: Row) -> None:
        await self.run(
            "INSERT INTO threads (thread_id, created_at, updated_at, state_updated_at, metadata, "
            'config, status, "values", interrupts, error, ttl) VALUES (?,?,?,?,?,?,?,?,?,?,?)',
            [
                t["thread_id"],
                t["created_at"],
                t["updated_at"],
                t.get("state_updated_at"),
                j(t["metadata"]),
                j(t.get("config") or {}),
                t["status"],
                None if t.get("values") is None else j(t["values"]),
                j(t.get("interrupts") or {}),
                None if t.get("error") is None else j(t["error"]),
                None if t.get("ttl") is None else j(t["ttl"]),
            ],
        )

    async def get_thread(self, thread_id: str) -> Row | None:
        return await self.one("SELECT * FROM threads WHERE thread_id=?", [thread_id])

    async def update_thread_meta(
        self, thread_id: str, metadata: Row, ttl: Row | None, now: str
    ) -> None:
        await self.run(
            "UPDATE threads SET metadata=?, ttl=COALESCE(?, ttl), updated_at=? WHERE thread_id=?",
            [j(metadata), None if ttl is None else j(ttl), now, thread_id],
        )

    async def mark_thread_busy(self, thread_id: str, metadata: Row, now: str) -> None:
        await self.run(
            "UPDATE threads SET status='busy', metadata=?, updated_at=? WHERE thread_id=?",
            [j(metadata), now, thread_id],
        )

    async def set_thread_status(self, thread_id: str, status: str, now: str) -> None:
        await self.run(
            "UPDATE threads SET status=?, updated_at=? WHERE thread_id=?", [status, now, thread_id]
        )

    async def set_thread_state(
        self,
        thread_id: str,
        *,
        status: str,
        values: Any,
        interrupts: Row,
        error: Any,
        now: str,
    ) -> None:
        await self.run(
            'UPDATE threads SET status=?, "values"=?, interrupts=?, error=?, updated_at=?, '
            "state_updated_at=? WHERE thread_id=?",
            [
                status,
                None if values is None else j(values),
                j(interrupts),
                None if error is None else j(error),
                now,
                now,
                thread_id,
            ],
        )

    async def delete_thread(self, thread_id: str) -> int:
        await self.run("DELETE FROM run_events WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM runs WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM checkpoints WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM writes WHERE thread_id=?", [thread_id])
        await self.run("DELETE FROM crons WHERE thread_id=?", [thread_id])
        return await self.run("DELETE FROM threads WHERE thread_id=?", [thread_id])

    async def search_threads(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT * FROM threads WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def copy_checkpoints(self, source: str, target: str) -> None:
        await self.run(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints "
            "WHERE thread_id=?",
            [target, source],
        )
        await self.run(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, "
            "idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, "
            "task_path, idx, channel, type, value FROM writes WHERE thread_id=?",
            [target, source],
        )

    async def keep_latest_checkpoint(self, thread_id: str) -> None:
        latest = await self.one(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id=? AND checkpoint_ns='' "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            [thread_id],
        )
        if latest is None:
            return
        keep = latest["checkpoint_id"]
        await self.run(
            "DELETE FROM checkpoints WHERE thread_id=? AND checkpoint_ns='' AND checkpoint_id<>?",
            [thread_id, keep],
        )
        await self.run(
            "UPDATE checkpoints SET parent_checkpoint_id=NULL WHERE thread_id=? AND "
            "checkpoint_id=?",
            [thread_id, keep],
        )
        await self.run(
            "DELETE FROM writes WHERE thread_id=? AND checkpoint_ns='' AND checkpoint_id<>?",
            [thread_id, keep],
        )

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        ids = await self.all(
            "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id=? AND "
            "json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
            [thread_id, run_id],
        )
        rows = [(thread_id, r["checkpoint_ns"], r["checkpoint_id"]) for r in ids]
        await self.many(
            "DELETE FROM writes WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?", rows
        )
        await self.many(
            "DELETE FROM checkpoints WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?",
            rows,
        )

    async def run_has_checkpoint(self, thread_id: str, run_id: str) -> bool:
        row = await self.one(
            "SELECT 1 AS x FROM checkpoints WHERE thread_id=? AND checkpoint_ns='' AND "
            "json_extract(CAST(metadata AS TEXT), '$.run_id') = ? LIMIT 1",
            [thread_id, run_id],
        )
        return row is not None

    # ---------------------------------------------------------------------- runs
    async def insert_run(self, r: Row) -> None:
        await self.run(
            "INSERT INTO runs (run_id, thread_id, assistant_id, created_at, updated_at, status, "
            "metadata, kwargs, multitask_strategy, temporary, attempt) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,0)",
            [
                r["run_id"],
                r["thread_id"],
                r["assistant_id"],
                r["created_at"],
                r["updated_at"],
                r["status"],
                j(r["metadata"]),
                j(r["kwargs"]),
                r["multitask_strategy"],
                1 if r.get("temporary") else 0,
            ],
        )

    async def get_run(self, run_id: str) -> Row | None:
        return await self.one("SELECT * FROM runs WHERE run_id=?", [run_id])

    async def list_runs(
        self, thread_id: str, status: str | None, limit: int, offset: int
    ) -> list[Row]:
        where, params = "thread_id=?", [thread_id]
        if status:
            where += " AND status=?"
            params.append(status)
        return await self.all(
            f"SELECT * FROM runs WHERE {where} ORDER BY created_at DESC, run_id DESC "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def thread_run_ids(self, thread_id: str) -> list[str]:
        rows = await self.all(
            "SELECT run_id FROM runs WHERE thread_id=? ORDER BY created_at, run_id", [thread_id]
        )
        return [r["run_id"] for r in rows]

    async def active_runs(self, thread_id: str) -> list[Row]:
        return await self.all(
            "SELECT * FROM runs WHERE thread_id=? AND status IN ('pending','running') "
            "ORDER BY created_at",
            [thread_id],
        )

    async def runs_by_status(self, status: Sequence[str]) -> list[Row]:
        marks = ",".join("?" * len(status))
        return await self.all(f"SELECT * FROM runs WHERE status IN ({marks})", list(status))

    async def delete_run(self, run_id: str) -> int:
        await self.run("DELETE FROM run_events WHERE run_id=?", [run_id])
        return await self.run("DELETE FROM runs WHERE run_id=?", [run_id])

    async def set_run_status(self, run_id: str, status: str, now: str) -> None:
        await self.run(
            "UPDATE runs SET status=?, updated_at=?, worker_id=NULL, lease_until=NULL "
            "WHERE run_id=?",
            [status, now, run_id],
        )

    async def set_cancel(self, run_id: str, action: str) -> None:
        await self.run("UPDATE runs SET cancel_action=? WHERE run_id=?", [action, run_id])

    async def claim_next(self, worker_id: str, now_iso: str, lease_until: float) -> Row | None:
        """Take the oldest due pending run on a thread with nothing running (one statement)."""
        rows = await self.all(
            "UPDATE runs SET status='running', worker_id=?, lease_until=?, attempt=attempt+1, "
            "updated_at=? WHERE run_id = (SELECT r.run_id FROM runs r WHERE r.status='pending' "
            "AND r.created_at<=? AND NOT EXISTS (SELECT 1 FROM runs o WHERE "
            "o.thread_id=r.thread_id AND o.status='running') ORDER BY r.created_at, r.run_id "
            "LIMIT 1) RETURNING *",
            [worker_id, lease_until, now_iso, now_iso],
        )
        return rows[0] if rows else None

    async def next_pending_at(self, after: str) -> str | None:
        """When the first pending run created for later than `after` becomes due."""
        row = await self.one(
            "SELECT MIN(created_at) AS t FROM runs WHERE status='pending' AND created_at>?",
            [after],
        )
        return row["t"] if row else None

    async def renew_leases(self, worker_id: str, run_ids: list[str], until: float) -> list[Row]:
        """Extend the leases of a worker's runs; return their cancel flags."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        await self.run(
            f"UPDATE runs SET lease_until=? WHERE worker_id=? AND run_id IN ({marks})",
            [until, worker_id, *run_ids],
        )
        return await self.all(
            f"SELECT run_id, cancel_action, status, worker_id FROM runs WHERE run_id IN ({marks})",
            run_ids,
        )

    async def requeue_expired(
        self, now: float, now_iso: str, all_running: bool, keep: Sequence[str] = ()
    ) -> list[Row]:
        """Put runs whose lease expired (or every running run) back to pending, except `keep`
        (runs this process is executing right now)."""
        cond = "1=1" if all_running else "lease_until < ?"
        params: list[Any] = [] if all_running else [now]
        rows = await self.all(f"SELECT * FROM runs WHERE status='running' AND {cond}", params)
        rows = [r for r in rows if r["run_id"] not in keep]
        for r in rows:
            await self.run(
                "UPDATE runs SET status='pending', worker_id=NULL, lease_until=NULL, "
                "updated_at=? WHERE run_id=?",
                [now_iso, r["run_id"]],
            )
        return rows

    async def finish_run(self, run_id: str, status: str, result: Any, now: str) -> None:
        await self.run(
            "UPDATE runs SET status=?, result=?, updated_at=?, worker_id=NULL, lease_until=NULL "
            "WHERE run_id=?",
            [status, None if result is None else j(result), now, run_id],
        )

    # -------------------------------------------------------------------- events
    async def append_events(self, rows: list[tuple[str, int, str, str, bytes]]) -> None:
        await self.many(
            "INSERT OR IGNORE INTO run_events (run_id, seq, thread_id, event, data) "
            "VALUES (?,?,?,?,?)",
            rows,
        )

    async def read_events(self, run_id: str, after: int) -> list[Row]:
        return await self.all(
            "SELECT seq, event, data FROM run_events WHERE run_id=? AND seq>? ORDER BY seq",
            [run_id, after],
        )

    async def max_event_seq(self, run_id: str) -> int:
        row = await self.one("SELECT MAX(seq) AS s FROM run_events WHERE run_id=?", [run_id])
        return int(row["s"]) if row and row["s"] is not None else 0

    # --------------------------------------------------------------------- crons
    async def insert_cron(self, c: Row) -> None:
        await self.run(
            f"INSERT INTO crons ({CRON_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                c["cron_id"],
                c["assistant_id"],
                c["thread_id"],
                c["on_run_completed"],
                c["end_time"],
                c["schedule"],
                c["timezone"],
                c["created_at"],
                c["updated_at"],
                j(c["payload"]),
                c["user_id"],
                c["next_run_date"],
                j(c["metadata"]),
                int(c["enabled"]),
            ],
        )

    async def update_cron(self, c: Row) -> None:
        await self.run(
            "UPDATE crons SET end_time=?, schedule=?, timezone=?, updated_at=?, payload=?, "
            "next_run_date=?, metadata=?, enabled=?, on_run_completed=? WHERE cron_id=?",
            [
                c["end_time"],
                c["schedule"],
                c["timezone"],
                c["updated_at"],
                j(c["payload"]),
                c["next_run_date"],
                j(c["metadata"]),
                int(c["enabled"]),
                c["on_run_completed"],
                c["cron_id"],
            ],
        )

    async def get_cron(self, cron_id: str) -> Row | None:
        return await self.one(f"SELECT {CRON_COLS} FROM crons WHERE cron_id=?", [cron_id])

    async def delete_cron(self, cron_id: str) -> int:
        return await self.run("DELETE FROM crons WHERE cron_id=?", [cron_id])

    async def search_crons(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT {CRON_COLS} FROM crons WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def due_crons(self, now: str) -> list[Row]:
        return await self.all(
            f"SELECT {CRON_COLS} FROM crons WHERE enabled=1 AND next_run_date IS NOT NULL "
            "AND next_run_date<=? AND (end_time IS NULL OR end_time>=next_run_date) "
            "ORDER BY next_run_date",
            [now],
        )

    async def advance_cron(self, cron_id: str, previous: str, next_run: str | None) -> bool:
        """Move a cron's next run date on, if no one else has (compare-and-set)."""
        changed = await self.run(
            "UPDATE crons SET next_run_date=? WHERE cron_id=? AND next_run_date=?",
            [next_run, cron_id, previous],
        )
        return changed == 1

    async def next_cron_at(self) -> str | None:
        row = await self.one(
            "SELECT MIN(next_run_date) AS at FROM crons WHERE enabled=1 "
            "AND (end_time IS NULL OR end_time>=next_run_date)"
        )
        return None if row is None else row["at"]
