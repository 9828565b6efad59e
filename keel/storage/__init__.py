"""Storage: one contract (`base.Storage`), one file per SQL dialect."""

from __future__ import annotations

import dataclasses

from keel.settings import Settings, StoreSettings
from keel.storage.base import Storage


def make_storage(settings: Settings) -> Storage:
    """The (not yet opened) storage named by `settings.database`."""
    storage: Storage
    if settings.backend == "postgres":
        from keel.storage.postgres import PostgresStorage

        storage = PostgresStorage(settings.database, pool_size=settings.pool_size)
    else:
        from keel.storage.sqlite import SqliteStorage

        storage = SqliteStorage(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    storage.store_settings = settings.store
    storage.thread_ttl = settings.checkpointer.ttl
    storage.base_dir = settings.base_dir
    return storage


async def open_storage(settings: Settings) -> Storage:
    """Open the database named by `settings.database` and apply migrations."""
    storage = make_storage(settings)
    await storage.open()
    return storage


async def open_for_admin(settings: Settings) -> Storage:
    """The server's database, opened for administration (`keel keys`, `audit`, `db`): without
    the store's index, with a small pool; on SQLite it shares the file with a running server
    (WAL), and holds the file's lock only while no server does (`SqliteStorage.holds_file`)."""
    settings = dataclasses.replace(settings, store=StoreSettings(), pool_size=2)
    storage = make_storage(settings)
    if settings.backend == "sqlite":
        from keel.storage.sqlite import SqliteStorage

        assert isinstance(storage, SqliteStorage)
        storage.exclusive = False
    await storage.open()
    return storage
