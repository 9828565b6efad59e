"""Migrations: a database upgraded from any earlier schema version ends up with exactly the schema
of a fresh one, on both dialects, and keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keel.settings import Settings
from keel.storage import make_storage
from keel.storage.base import migration_files
from tests.conftest import database_for

DIALECT = {"sqlite": "sqlite", "postgres": "postgres"}
THREAD = ("t-1", "2026-01-01T00:00:00.000000+00:00")


def sqlite_schema(url: str) -> list[Any]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def postgres_schema(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, "
            "collation_name FROM information_schema.columns WHERE table_schema='public' "
            "ORDER BY table_name, column_name"
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname='public' "
            "ORDER BY indexname"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace='public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
    return [*columns, *indexes, *constraints]


def schema(backend: str, url: str) -> list[Any]:
    return sqlite_schema(url) if backend == "sqlite" else postgres_schema(url)


def apply_upto(backend: str, url: str, version: int) -> None:
    """What an older Keel left behind: migrations up to `version`, and one thread row."""
    create = "CREATE TABLE keel_migrations (version INTEGER PRIMARY KEY, name TEXT)"
    insert_thread = "INSERT INTO threads (thread_id, created_at, updated_at) VALUES (?, ?, ?)"
    files = [f for f in migration_files(DIALECT[backend]) if f[0] <= version]
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute(create)
        for number, name, sql in files:
            conn.executescript(sql)
            conn.execute("INSERT INTO keel_migrations VALUES (?, ?)", (number, name))
        conn.execute(insert_thread, (THREAD[0], THREAD[1], THREAD[1]))
        conn.close()
        return
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(create)
        for number, name, sql in files:
            pg.execute(sql.encode())
            pg.execute("INSERT INTO keel_migrations VALUES (%s, %s)", (number, name))
        pg.execute(insert_thread.replace("?", "%s"), (THREAD[0], THREAD[1], THREAD[1]))


async def open_and_close(url: str) -> None:
    storage = make_storage(Settings(database=url))
    await storage.open()
    await storage.close()


def fresh_url(backend: str, request: pytest.FixtureRequest, path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return database_for(backend, request, path)


async def test_every_upgrade_path_equals_a_fresh_schema(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fresh = fresh_url(backend, request, tmp_path / "fresh")
    await open_and_close(fresh)
    want = schema(backend, fresh)
    assert want, "the fresh schema is empty"
    versions = [number for number, _, _ in migration_files(DIALECT[backend])]
    assert versions == list(range(1, len(versions) + 1)), "migrations are numbered 1..n"
    for upto in versions[:-1]:
        url = fresh_url(backend, request, tmp_path / f"from{upto}")
        apply_upto(backend, url, upto)
        await open_and_close(url)
        assert schema(backend, url) == want, f"upgrading from version {upto} differs"
        await open_and_close(url)  # a second start changes nothing
        assert schema(backend, url) == want
        if backend == "sqlite":
            conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            rows = conn.execute("SELECT thread_id FROM threads").fetchall()
            conn.close()
        else:
            with psycopg.connect(url) as pg:
                rows = pg.execute("SELECT thread_id FROM threads").fetchall()
        assert rows == [(THREAD[0],)], "an upgrade lost rows"


async def test_run_ordinals_are_numbered_on_upgrade(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Migration 13 numbers a thread's existing runs by creation (the v3 stream's seqs stay
    what they were) and counts them on the thread, so the next run comes after them."""
    url = fresh_url(backend, request, tmp_path / "from12")
    apply_upto(backend, url, 12)
    insert = (
        "INSERT INTO runs (run_id, thread_id, assistant_id, created_at, updated_at, status) "
        "VALUES (?, ?, 'a', ?, ?, 'success')"
    )
    runs = [("r-b", "2026-01-02"), ("r-a", "2026-01-03"), ("r-c", "2026-01-01")]
    rows = [(run_id, THREAD[0], at, at) for run_id, at in runs]
    query = "SELECT run_id, thread_ordinal FROM runs ORDER BY run_id"
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.executemany(insert, rows)
        conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.cursor().executemany(insert.replace("?", "%s"), rows)
    await open_and_close(url)
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        ordinals = conn.execute(query).fetchall()
        made = conn.execute("SELECT runs_made FROM threads").fetchall()
        conn.close()
    else:
        with psycopg.connect(url) as pg:
            ordinals = pg.execute(query).fetchall()
            made = pg.execute("SELECT runs_made FROM threads").fetchall()
    assert ordinals == [("r-a", 3), ("r-b", 2), ("r-c", 1)]
    assert made == [(3,)]
