"""Fixtures for the store suites. `stores` opens LangGraph `BaseStore`s of the module's backend:
"memory" is LangGraph's own `InMemoryStore` (the oracle: it shows what the tests encode is
LangGraph's semantics), "sqlite" and "postgres" are Keel's store on a real database.

Keel stores of one module share one database (a PostgreSQL database takes ~0.2 s to create), so
tests write under namespaces of their own (`unique_ns`); `fresh=True` gives a test an empty one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from keel.settings import IndexSettings, Settings, StoreSettings, TTLSettings
from keel.storage import open_storage
from keel.storage.base import Storage
from tests.conftest import database_for
from tests.store import fake_embed
from tests.support.clock import FakeClock

FAKE_EMBED = "tests.store.fake_embed:embed"
KEEL_BACKENDS = ("sqlite", "postgres")
ALL_BACKENDS = ("memory", *KEEL_BACKENDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`store_backend`: the module's `BACKENDS` (default all three), or those a test's
    `@pytest.mark.backends(...)` names (a test that cannot run on one is not generated for it,
    rather than skipped)."""
    if "store_backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    chosen = marker.args if marker else getattr(metafunc.module, "BACKENDS", ALL_BACKENDS)
    metafunc.parametrize("store_backend", list(chosen), scope="module")


def unique_ns(*labels: str) -> tuple[str, ...]:
    """A namespace no other test uses: a random root label, then `labels`."""
    return (f"t{uuid.uuid4().hex[:12]}", *labels)


@dataclass
class Stores:
    """Opens stores of one backend; closes the Keel ones at the end of the test."""

    backend: str
    shared_url: str | None
    workdir: Path
    request: pytest.FixtureRequest
    opened: list[Storage] = field(default_factory=list)

    @property
    def keel(self) -> bool:
        return self.backend != "memory"

    async def open(
        self,
        *,
        fields: Sequence[str] = ("$",),
        indexed: bool = True,
        ttl: TTLSettings | None = None,
        fresh: bool = False,
        embed: str = FAKE_EMBED,
        url: str | None = None,
    ) -> BaseStore:
        """A store embedding `fields` with the fake embedding (none when not `indexed`)."""
        if not self.keel:
            index: Any = {"dims": fake_embed.DIMS, "embed": fake_embed.embed, "fields": [*fields]}
            return InMemoryStore(index=index if indexed else None)
        index_settings = IndexSettings(dims=fake_embed.DIMS, embed=embed, fields=tuple(fields))
        settings = StoreSettings(
            index=index_settings if indexed else None, ttl=ttl or TTLSettings()
        )
        return (await self.open_storage(settings, fresh=fresh, url=url)).store

    async def open_storage(
        self, store: StoreSettings, *, fresh: bool = False, url: str | None = None
    ) -> Storage:
        """Keel's storage with these store settings, on the module's database by default."""
        if url is None:
            url = self.new_database() if fresh or self.shared_url is None else self.shared_url
        settings = Settings(database=url, base_dir=self.workdir, store=store, pool_size=4)
        storage = await open_storage(settings)
        self.opened.append(storage)
        return storage

    def new_database(self) -> str:
        workdir = self.workdir / uuid.uuid4().hex[:8]
        workdir.mkdir()
        return database_for(self.backend, self.request, workdir)


@pytest.fixture(scope="module")
def shared_url(
    store_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str | None:
    """One database per module and backend (None for the in-memory oracle)."""
    if store_backend == "memory":
        return None
    return database_for(store_backend, request, tmp_path_factory.mktemp(f"store-{store_backend}"))


@pytest.fixture
async def stores(
    store_backend: str, shared_url: str | None, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Stores]:
    opener = Stores(store_backend, shared_url, tmp_path, request)
    try:
        yield opener
    finally:
        for storage in reversed(opener.opened):
            await storage.close()


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Keel's clock stands still until the test advances it (TTL tests, no sleeping)."""
    return FakeClock(monkeypatch)
