"""LangGraph's checkpointer conformance suite against Keel's checkpointers, on both dialects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate

from keel.storage.base import Storage
from keel.storage.postgres import PostgresStorage
from keel.storage.sqlite import SqliteStorage
from tests.support.postgres import PgCluster


async def _conforms(name: str, make: object) -> None:
    @checkpointer_test(name=name)
    async def keel_saver() -> AsyncIterator[object]:
        storage: Storage = make()  # type: ignore[operator]
        await storage.open()
        try:
            yield storage.checkpointer
        finally:
            await storage.close()

    report = await validate(keel_saver)
    report.print_report()
    assert report.passed_all_base(), report.to_dict()


async def test_keel_sqlite_saver_conforms(tmp_path: Path) -> None:
    counter = iter(range(1000))
    await _conforms("KeelSqliteSaver", lambda: SqliteStorage(tmp_path / f"cp{next(counter)}.db"))


async def test_keel_postgres_saver_conforms(pg_cluster: PgCluster) -> None:
    await _conforms("KeelPostgresSaver", lambda: PostgresStorage(pg_cluster.create_database()))
