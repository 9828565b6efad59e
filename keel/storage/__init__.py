"""Storage: one contract (`base.Storage`), one file per SQL dialect."""

from __future__ import annotations

from keel.settings import Settings
from keel.storage.base import Storage


def make_storage(settings: Settings) -> Storage:
    """The (not yet opened) storage named by `settings.database`."""
    if settings.backend == "postgres":
        from keel.storage.postgres import PostgresStorage

        return PostgresStorage(settings.database, pool_size=settings.pool_size)
    from keel.storage.sqlite import SqliteStorage

    return SqliteStorage(settings.sqlite_path, synchronous=settings.sqlite_synchronous)


async def open_storage(settings: Settings) -> Storage:
    """Open the database named by `settings.database` and apply migrations."""
    storage = make_storage(settings)
    await storage.open()
    return storage
