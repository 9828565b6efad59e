"""PostgreSQL dialect: a psycopg 3 async pool shared by Keel's queries, LangGraph's
`AsyncPostgresSaver` and store; LISTEN/NOTIFY for cross-process signals.

Many Keel processes (API servers and workers, on many machines) share one database. Migrations
run under an advisory lock, so processes starting together apply each one exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from keel.errors import Conflict, Unavailable
from keel.serde import dumps, loads
from keel.storage.base import Listener, QueryTimer, Storage, exception_chain, migration_files
from keel.storage.checkpointer import KeelPostgresSaver, nul_is_bad_input
from keel.storage.footprint import Footprint, TableSize, VacuumReport
from keel.storage.tx import Dialect, Row, Tx, j

log = logging.getLogger("keel.storage")
MIGRATION_LOCK = 0x6B65656C  # "keel": pg_advisory_lock key held while migrating
LISTEN_PING = 5.0  # seconds of silence after which the LISTEN connection is checked
SUSPECT_SECONDS = 30.0  # after a lost connection, test pooled connections this long
_SQL: dict[str, str] = {}
# The tables of Keel's schema with their indexes and TOAST, and their rows not yet vacuumed.
TABLE_SIZES = (
    "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes, s.n_dead_tup AS dead "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)
DATABASE_SIZE = "SELECT pg_database_size(current_database()) AS bytes"


def pg_sql(sql: str) -> str:
    """Keel's `?` placeholders as psycopg's `%s` (queries contain no literal `?` or `%`)."""
    out = _SQL.get(sql)
    if out is None:
        out = _SQL[sql] = sql.replace("?", "%s")
    return out


class PostgresDialect(Dialect):
    name = "postgres"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    for_update = "FOR UPDATE"

    def containment(self, column: str, filt: Row, prefix: str = "$") -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for path, value in _leaves(filt, []):
            clauses.append(f"{column} #> ?::text[] = ?::jsonb")
            params.extend([path, j(value)])
        return (" AND ".join(clauses) or "1=1"), params

    def json_compare(
        self, column: str, path: list[str], sql_op: str, operand: Any
    ) -> tuple[str, list[Any]]:
        if isinstance(operand, str):
            kind, value = "string", f'({column} #>> ?::text[]) COLLATE "C"'
        else:
            kind, value = "number", f"({column} #>> ?::text[])::float8"
        typed = f"jsonb_typeof({column} #> ?::text[]) = '{kind}'"
        sql = f"(CASE WHEN {typed} THEN {value} END) {sql_op} ?"
        return sql, [path, path, operand]

    def json_equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        return f"{column} #> ?::text[] = ?::jsonb", [[key], j(value)]

    def json_list_holds(self, column: str, key: str, values: list[Any]) -> tuple[str, list[Any]]:
        sql = (
            f"(jsonb_typeof({column} #> ?::text[]) = 'array' "
            f"AND {column} #> ?::text[] @> ?::jsonb)"
        )
        return sql, [[key], [key], j(values)]

    def contains_text(self, column: str) -> str:
        return f"strpos(lower({column}), lower(?)) > 0"

    def json_text(self, column: str, key: str) -> str:
        return f"{column}->>'{key}'"


def _leaves(filt: Row, prefix: list[str]) -> Iterable[tuple[list[str], Any]]:
    for key, value in filt.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, [*prefix, key])
        else:
            yield [*prefix, key], value


class PostgresTx(Tx):
    """Named queries over one pooled connection (rows come back as dicts, JSONB decoded)."""

    dialect = PostgresDialect()
    writes_table = "checkpoint_writes"

    def __init__(self, conn: psycopg.AsyncConnection[Any], timer: QueryTimer | None) -> None:
        self.conn = conn
        self.timer = timer  # keel_db_query_seconds (keel.metrics), when on

    async def _execute(self, sql: str, params: Sequence[Any]) -> psycopg.AsyncCursor[Any]:
        if self.timer is None:
            return await self.conn.execute(pg_sql(sql), params)
        started = time.perf_counter()
        try:
            return await self.conn.execute(pg_sql(sql), params)
        finally:
            self.timer(time.perf_counter() - started)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = await self._execute(sql, params)
        row: Row | None = await cur.fetchone()
        return row

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self._execute(sql, params)
        rows: list[Row] = await cur.fetchall()
        return rows

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self._execute(sql, params)
        return cur.rowcount

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            started = time.perf_counter()
            async with self.conn.cursor() as cur:
                await cur.executemany(pg_sql(sql), rows)
            if self.timer is not None:
                self.timer(time.perf_counter() - started)

    async def notify(self, channel: str, payload: str) -> None:
        await self.conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])

    # ---------------------------------------- AsyncPostgresSaver's tables
    async def delete_thread_checkpoints(self, thread_id: str) -> None:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            await self.run(f"DELETE FROM {table} WHERE thread_id=?", [thread_id])

    async def copy_checkpoints(self, source: str, target: str) -> None:
        # The metadata's `thread_id` (see checkpointer.py) names the copy.
        await self.run(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, type, checkpoint, CASE WHEN "
            "metadata->>'thread_id' IS NULL THEN metadata ELSE jsonb_set(metadata, "
            "'{thread_id}', to_jsonb(?::text)) END FROM checkpoints WHERE thread_id=?",
            [target, target, source],
        )
        for table, cols in (
            ("checkpoint_blobs", "checkpoint_ns, channel, version, type, blob"),
            (
                "checkpoint_writes",
                "checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path",
            ),
        ):
            await self.run(
                f"INSERT INTO {table} (thread_id, {cols}) SELECT ?, {cols} FROM {table} "
                "WHERE thread_id=?",
                [target, source],
            )

    async def drop_orphan_blobs(self, thread_id: str) -> None:
        await self.run(
            "DELETE FROM checkpoint_blobs b WHERE b.thread_id=? AND NOT EXISTS (SELECT 1 FROM "
            "checkpoints c WHERE c.thread_id=b.thread_id AND c.checkpoint_ns=b.checkpoint_ns "
            "AND c.checkpoint->'channel_versions'->>b.channel = b.version)",
            [thread_id],
        )


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(loads, conn)
    set_json_dumps(dumps, conn)


class ReturningPool(AsyncConnectionPool[Any]):
    """psycopg's pool, except that a connection given back always reaches the pool: psycopg_pool
    (3.3) loses one whose return is cancelled midway (waiting for the pool's lock, which other
    clients hold often under load), and the pool then believes it lent out. Keel cancels tasks
    that may be returning one (a cancelled run, an event flush cancelled at a run's end, an
    abandoned request): a busy server lost its whole pool in seconds. The return now goes on in
    its own task; the cancelled caller still sees its CancelledError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returning: set[asyncio.Task[None]] = set()

    async def putconn(self, conn: Any) -> None:
        task = asyncio.ensure_future(super().putconn(conn))
        self._returning.add(task)  # referenced until done
        task.add_done_callback(self._returned)
        await asyncio.shield(task)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._returning.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("returning a connection to the pool failed: %s", task.exception())


class PostgresStorage(Storage):
    dialect = PostgresTx.dialect
    shared = True

    def __init__(self, url: str, pool_size: int = 20, connect_timeout: float = 30.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Any] | None = None
        # Until then, pooled connections are tested before use: the database was lost lately,
        # so idle ones may be dead. Otherwise the test (a round trip) is skipped.
        self._suspect_until = 0.0
        self.checkpointer: KeelPostgresSaver
        self.timer: QueryTimer | None = None  # the process's metrics (keel.metrics): Runtime

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            raise Unavailable("storage is not open")
        return self._pool

    def record_queries(self, timer: QueryTimer) -> None:
        self.timer = timer

    def pool_stats(self) -> dict[str, int] | None:
        if self._pool is None:
            return None
        stats = self._pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return {
            "in_use": size - idle,
            "idle": idle,
            "max": self.pool_size,
            "waiting": stats.get("requests_waiting", 0),
        }

    async def open(self) -> None:
        pool: AsyncConnectionPool[Any] = ReturningPool(
            self.url,
            min_size=min(2, self.pool_size),
            max_size=self.pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            check=self._check,
            timeout=10.0,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise Unavailable(
                f"cannot connect to PostgreSQL at {redact(self.url)} within "
                f"{self.connect_timeout:g}s; is it running?"
            ) from exc
        self._pool = pool
        self.checkpointer = KeelPostgresSaver(pool)
        async with pool.connection() as conn:
            await self._lock_migrations(conn)
            try:
                await self._migrate(conn)
                await self.checkpointer.setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
        self.store = self.make_store()

    @staticmethod
    async def _lock_migrations(conn: psycopg.AsyncConnection[Any]) -> None:
        """Take the migration lock, polling: a session blocked in `pg_advisory_lock` would hold
        a snapshot that LangGraph's `CREATE INDEX CONCURRENTLY`, run by the lock's holder on
        another connection, waits for — a deadlock PostgreSQL cannot see."""
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", [MIGRATION_LOCK])
            row = await cur.fetchone()
            if row is not None and row["ok"]:
                return
            await asyncio.sleep(0.05)

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS keel_migrations (version INTEGER PRIMARY KEY, name TEXT)"
        )
        cur = await conn.execute("SELECT version FROM keel_migrations")
        done = {row["version"] for row in await cur.fetchall()}
        for version, name, sql in migration_files("postgres"):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql.encode())
                await conn.execute("INSERT INTO keel_migrations VALUES (%s, %s)", [version, name])
            log.info("applied migration %s", name)

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() < self._suspect_until:
            await AsyncConnectionPool.check_connection(conn)

    def _suspect(self) -> None:
        self._suspect_until = time.monotonic() + SUSPECT_SECONDS

    @contextlib.contextmanager
    def _db_errors(self) -> Iterator[None]:
        """Database failures as Keel errors: lost connections are 503, unique clashes 409, text
        PostgreSQL cannot hold (a NUL character) 422."""
        try:
            with nul_is_bad_input():
                yield
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"conflicting change: {exc.diag.message_primary}") from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._suspect()
            raise Unavailable(f"database unavailable: {exc}") from exc

    async def close(self) -> None:
        await self.close_store()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        with self._db_errors():
            async with self.pool.connection() as conn, conn.transaction():
                tx = PostgresTx(conn, self.timer)
                yield tx
        self.committed(tx)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        with self._db_errors():
            async with self.pool.connection() as conn:
                yield PostgresTx(conn, self.timer)

    async def ping(self, within: float) -> None:
        with self._db_errors():
            async with self.pool.connection(timeout=within) as conn:
                await conn.execute("SELECT 1")

    def is_unavailable(self, exc: BaseException) -> bool:
        lost = (psycopg.OperationalError, PoolTimeout, Unavailable)
        if any(isinstance(e, lost) for e in exception_chain(exc)):
            self._suspect()
            return True
        return False

    async def footprint(self) -> Footprint:
        async with self.read() as tx:
            rows = await tx.all(TABLE_SIZES)
            total = await tx.one(DATABASE_SIZE)
        tables = [TableSize(r["name"], int(r["bytes"]), _int(r["dead"])) for r in rows]
        return Footprint(tables, int(total["bytes"]) if total else 0)

    async def vacuum(self) -> VacuumReport:
        """VACUUM (ANALYZE) Keel's tables, the checkpoints' and the store's, one at a time: dead
        rows become reusable space and the planner's statistics are fresh. Files shrink only
        when their last pages are empty (autovacuum does the same by itself)."""
        before = await self.footprint()
        names = [t.name for t in before.tables if t.group != "other"]
        with self._db_errors():
            async with self.pool.connection() as conn:  # autocommit: VACUUM runs outside a tx
                for name in names:
                    quoted = name.replace('"', '""')
                    await conn.execute(f'VACUUM (ANALYZE) "{quoted}"'.encode())
        after = await self.footprint()
        done = [f"VACUUM (ANALYZE) on {len(names)} tables: {', '.join(names)}"]
        return VacuumReport(before.total_bytes, after.total_bytes, done)

    async def listen(self, channels: list[str], listener: Listener) -> None:
        """LISTEN on a dedicated connection; reconnect (with backoff) whenever it is lost.

        After every (re)connection the listener gets `("keel_reconnect", "")`: notifications
        sent while disconnected are lost, so it should look at the database once.
        """
        backoff = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            try:
                async with conn:
                    for channel in channels:
                        await conn.execute(f'LISTEN "{channel}"')
                    if backoff > 0.1:  # reconnected after a failure: pooled ones may be dead
                        self._suspect()
                    backoff = 0.1
                    await listener("keel_reconnect", "")
                    await self._deliver(conn, listener)
            except psycopg.OperationalError as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._suspect()
                backoff = 0.2

    @staticmethod
    async def _deliver(conn: psycopg.AsyncConnection[Any], listener: Listener) -> None:
        while True:
            got = False
            async for note in conn.notifies(timeout=LISTEN_PING):
                got = True
                await listener(note.channel, note.payload)
            if not got:
                await conn.execute("SELECT 1")  # a dead connection raises here


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def redact(url: str) -> str:
    """The URL without its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable URL>"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())
