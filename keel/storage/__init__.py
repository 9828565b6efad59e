"""Storage: one contract (`base.Storage`), one file per SQL dialect."""

from __future__ import annotations

from keel.settings import Settings
from keel.storage.base import Storage


async def open_storage(settings: Settings) -> Storage:
    """Open the database named by `settings.database` and apply migrations."""
    from keel.storage.sqlite import SqliteStorage

    storage = SqliteStorage(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    await storage.open()
    return storage
