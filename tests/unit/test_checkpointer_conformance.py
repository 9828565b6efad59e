"""LangGraph's checkpointer conformance suite against Keel's SQLite checkpointer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate

from keel.storage.sqlite import SqliteStorage


async def test_keel_sqlite_saver_conforms(tmp_path: Path) -> None:
    counter = iter(range(1000))

    @checkpointer_test(name="KeelSqliteSaver")
    async def keel_saver() -> AsyncIterator[object]:
        storage = SqliteStorage(tmp_path / f"cp{next(counter)}.db")
        await storage.open()
        try:
            yield storage.checkpointer
        finally:
            await storage.close()

    report = await validate(keel_saver)
    report.print_report()
    assert report.passed_all_base(), report.to_dict()
