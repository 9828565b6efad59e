"""`keel db stats` and `keel db vacuum` on a real server's database, while it runs and after.

The numbers `keel db stats` prints are those of what the test made; the sweep preview it shows
is exactly what the following sweep removes (the sweeper runs here, in the test's process, with
a clock days ahead); `keel db vacuum` converts a SQLite file made before incremental auto-vacuum
(refused while a server holds it), gives free pages back (also while the server runs) and runs
VACUUM (ANALYZE) on PostgreSQL.

Keel-only (Keel's commands, tables and config): nothing here runs against the reference.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from keel.retention.stats import collect
from keel.retention.sweeps import Sweeper, SweepReport
from keel.settings import Settings, load_settings
from keel.storage import open_for_admin
from tests.conftest import database_for
from tests.support.api_keys import keel_cli, sql
from tests.support.reference import ROOT
from tests.support.server import KeelServer

CONFIG = {
    "graphs": {"pipeline": f"{ROOT / 'examples' / 'agents' / 'pipeline.py'}:graph"},
    "store": {"ttl": {"sweep_interval_minutes": 60}},
}
DAYS_AHEAD = 3 * 86400.0
OLD_FILE_NOTE = "predates incremental auto-vacuum"


def start_server(workdir: Path, database: str) -> KeelServer:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "langgraph.json"
    config.write_text(json.dumps(CONFIG))
    srv = KeelServer(config, workdir, database=database, env={"KEEL_LOG_LEVEL": "info"})
    srv.start()
    return srv


@pytest.fixture
def db_server(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeelServer]:
    """A server on a fresh database, for this test alone (the tests count rows)."""
    srv = start_server(tmp_path / "srv", database_for(backend, request, tmp_path))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(db_server: KeelServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=db_server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


def stats(server: KeelServer) -> dict[str, Any]:
    done = keel_cli(server, "db", "stats", "--json")
    assert done.returncode == 0, done.stderr
    got: dict[str, Any] = json.loads(done.stdout)
    return got


def table(got: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in got["tables"] if t["name"] == name)


def count(server: KeelServer, name: str) -> int:
    return int(sql(server, f"SELECT COUNT(*) FROM {name}")[0][0])


async def healthy(server: KeelServer) -> bool:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body: dict[str, Any] = (await http.get("/ok")).json()
    return body == {"ok": True}


def settings_of(server: KeelServer) -> Settings:
    return load_settings(server.config, database=server.database, quiet=True)


async def pipeline_runs(client: LangGraphClient, thread_id: str | None, n: int, topic: str) -> None:
    for _ in range(n):
        await client.runs.wait(thread_id, "pipeline", input={"topic": topic})


async def test_stats_count_what_was_made_while_the_server_runs(
    backend: str, db_server: KeelServer, client: LangGraphClient
) -> None:
    threads = [(await client.threads.create())["thread_id"] for _ in range(3)]
    first = await client.runs.create(threads[0], "pipeline", input={"topic": "first"})
    await client.runs.join(threads[0], first["run_id"])
    await pipeline_runs(client, threads[0], 1, "x")
    for thread_id in threads[1:]:
        await pipeline_runs(client, thread_id, 2, "x")
    await pipeline_runs(client, None, 1, "stateless")  # its thread goes, its run stays a while

    got = stats(db_server)
    assert await healthy(db_server)
    assert got["backend"] == backend
    assert table(got, "threads")["rows"] == 3
    assert table(got, "runs")["rows"] == 7
    assert table(got, "assistants")["rows"] == 1
    for name in ("run_events", "checkpoints"):
        assert table(got, name)["rows"] == count(db_server, name) > 0
    groups = {t["name"]: t["group"] for t in got["tables"]}
    assert groups["threads"] == "keel" and groups["store_items"] == "store"
    assert groups["checkpoints"] == "checkpoints"
    assert got["bytes_known"] and all(t["bytes"] > 0 for t in got["tables"])
    assert got["total_bytes"] >= sum(t["bytes"] for t in got["tables"]) > 0
    assert got["oldest_run"]["run_id"] == first["run_id"]
    assert got["oldest_event_log"]["run_id"] == first["run_id"]
    assert got["next_sweep"] == SweepReport().as_dict()  # nothing is past its retention yet

    text = keel_cli(db_server, "db", "stats")
    assert text.returncode == 0, text.stderr
    assert "run_events" in text.stdout and "the next sweep would remove" in text.stdout
    assert first["run_id"] in text.stdout


async def test_the_preview_is_what_the_next_sweep_removes(
    backend: str, db_server: KeelServer, client: LangGraphClient
) -> None:
    doomed = await client.threads.create(ttl={"ttl": 60, "strategy": "delete"})
    pruned = await client.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"})
    kept = await client.threads.create()
    await pipeline_runs(client, doomed["thread_id"], 1, "doomed")
    await pipeline_runs(client, pruned["thread_id"], 2, "pruned")
    await pipeline_runs(client, kept["thread_id"], 1, "kept")
    await client.threads.update_state(kept["thread_id"], {"topic": "edited"})
    await pipeline_runs(client, None, 1, "stateless")
    await client.store.put_item(["notes"], "short", {"v": 1}, ttl=5)
    await client.store.put_item(["notes"], "long", {"v": 2})

    settings = settings_of(db_server)
    storage = await open_for_admin(settings)  # shares the file with the running server
    try:
        now = time.time() + DAYS_AHEAD
        preview = await Sweeper(storage, settings).preview(now)
        shown = (await collect(storage, settings, now)).next_sweep
        swept = await Sweeper(storage, settings).sweep(now)
        again = await Sweeper(storage, settings).preview(now)
    finally:
        await storage.close()
    assert swept == SweepReport(
        threads_deleted=1,
        threads_pruned=1,
        run_logs_swept=4,  # pruned's 2, kept's, the stateless run's (doomed's went with it)
        stateless_runs=1,
        thread_events=1 if backend == "postgres" else 0,  # the state update's, for streams
        store_items=1,
    )
    assert preview == swept
    assert shown == swept.as_dict()
    assert again == SweepReport()
    assert count(db_server, "threads") == 2 and count(db_server, "runs") == 3


async def bulk_runs(server: KeelServer, n: int) -> None:
    """`n` runs whose event logs are large (~60 KB each): what a sweep frees."""
    async with get_client(url=server.url, api_key=None) as sdk:
        thread = await sdk.threads.create()
        for i in range(n):
            await sdk.runs.wait(thread["thread_id"], "pipeline", input={"topic": f"{i}" * 20_000})


async def sweep_event_logs(server: KeelServer) -> int:
    settings = settings_of(server)
    storage = await open_for_admin(settings)
    try:
        report = await Sweeper(storage, settings).sweep(time.time() + DAYS_AHEAD)
    finally:
        await storage.close()
    return report.run_logs_swept


def on_disk(got: dict[str, Any]) -> int:
    return int(got["total_bytes"])


@pytest.mark.backends("sqlite")
async def test_vacuum_converts_an_old_sqlite_file_and_gives_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    old = sqlite3.connect(path)  # a file made before Keel turned incremental auto-vacuum on
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    srv = start_server(tmp_path / "srv", f"sqlite:///{path}")
    try:
        assert srv.logs().count(OLD_FILE_NOTE) == 1
        await bulk_runs(srv, 20)
        assert await sweep_event_logs(srv) == 20
        before = stats(srv)
        assert before["auto_vacuum"] == "none" and before["free_bytes"] > 1_000_000
        refused = keel_cli(srv, "db", "vacuum")
        assert refused.returncode == 2
        assert "stop the Keel server" in refused.stderr
        assert await healthy(srv)
        srv.stop()

        done = keel_cli(srv, "db", "vacuum")
        assert done.returncode == 0, done.stderr
        assert "converted to incremental auto-vacuum" in done.stdout
        after = stats(srv)
        assert after["auto_vacuum"] == "incremental" and after["free_bytes"] == 0
        assert on_disk(after) < on_disk(before) - before["free_bytes"] // 2

        srv.start()  # the converted file: no note this time
        assert srv.logs().count(OLD_FILE_NOTE) == 1
        await bulk_runs(srv, 20)
        assert await sweep_event_logs(srv) == 20
        freed = stats(srv)
        assert freed["free_bytes"] > 1_000_000
        trimmed = keel_cli(srv, "db", "vacuum")  # while the server runs: allowed now
        assert trimmed.returncode == 0, trimmed.stderr
        last = stats(srv)
        assert last["free_bytes"] == 0
        assert on_disk(last) < on_disk(freed) - freed["free_bytes"] // 2
        assert await healthy(srv)
    finally:
        srv.stop()


@pytest.mark.backends("postgres")
async def test_vacuum_analyzes_keel_and_checkpoint_tables_on_postgres(
    db_server: KeelServer,
) -> None:
    await bulk_runs(db_server, 3)
    done = keel_cli(db_server, "db", "vacuum")
    assert done.returncode == 0, done.stderr
    rows = sql(
        db_server,
        "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
        "AND last_analyze IS NOT NULL",
    )
    vacuumed = {r[0] for r in rows}
    wanted = {"threads", "runs", "run_events", "checkpoints", "checkpoint_blobs"}
    assert wanted | {"checkpoint_writes", "store_items"} <= vacuumed


def test_db_commands_never_create_a_sqlite_file(tmp_path: Path) -> None:
    srv = KeelServer(ROOT / "tests" / "graphs" / "keel.json", tmp_path)
    for action in ("stats", "vacuum"):
        done = keel_cli(srv, "db", action)
        assert done.returncode == 2
        assert "no SQLite database" in done.stderr
    assert not (tmp_path / "keel.db").exists()
