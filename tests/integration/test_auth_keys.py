"""The API-key cache and the audit writer on real databases (both dialects): a cached key is still
refused the moment it expires or is revoked, here or by another process; `last_used_at` is
written at most once a minute; the audit writer's batches, flush and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from keel import clock as keel_clock
from keel.auth.audit import AuditLog, AuditQuery, read_entries
from keel.auth.guard import AuditEntry
from keel.auth.keys import KeyAuthenticator, KeyRejected, KeyService, get_key
from keel.settings import Settings
from keel.storage import make_storage, open_for_admin
from keel.storage.base import Storage
from tests.e2e.helpers import poll

DAY = 86400.0


class Clock:
    def __init__(self, start: float) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    store = make_storage(Settings(database=database_url))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_expiry_is_checked_on_every_use_of_a_cached_key(storage: Storage) -> None:
    _, key = await KeyService(storage).create("o", "member", expires_days=1)
    clock = Clock(keel_clock.now())
    keys = KeyAuthenticator(storage, now=clock)
    user = await keys.authenticate(key)
    assert (user.identity, user.org, user.role) == (f"key:{key.split('_')[1]}", "o", "member")
    assert "threads:create" in user.permissions and "audit:read" not in user.permissions
    clock.value += DAY - 1
    await keys.authenticate(key)
    clock.value += 2
    with pytest.raises(KeyRejected, match="API key expired") as refused:
        await keys.authenticate(key)
    assert refused.value.identity == f"key:{key.split('_')[1]}" and refused.value.org == "o"


async def test_a_key_revoked_by_this_process_is_refused_at_once(storage: Storage) -> None:
    keys = KeyAuthenticator(storage)
    service = KeyService(storage, keys)
    made, key = await service.create("o", "viewer")
    await keys.authenticate(key)
    await service.revoke(made.key_id)
    with pytest.raises(KeyRejected, match="API key revoked"):
        await keys.authenticate(key)


async def test_a_cached_key_is_not_read_again(storage: Storage) -> None:
    keys = KeyAuthenticator(storage)
    made, key = await KeyService(storage).create("o", "member")
    await keys.authenticate(key)
    async with storage.tx() as tx:  # this connection: no other process's change to notice
        await tx.run("UPDATE api_keys SET role='viewer' WHERE key_id=?", [made.key_id])
    assert (await keys.authenticate(key)).role == "member"
    keys.forget(made.key_id)
    assert (await keys.authenticate(key)).role == "viewer"


async def test_a_change_by_another_process_reaches_the_cache(
    storage: Storage, database_url: str, backend: str
) -> None:
    keys = KeyAuthenticator(storage)
    await keys.start()  # PostgreSQL: listens for the changes other processes announce
    other = await open_for_admin(Settings(database=database_url))  # as `keel keys` does
    try:
        made, key = await KeyService(other).create("o", "member")
        await keys.authenticate(key)
        await KeyService(other).revoke(made.key_id)
        if backend == "sqlite":  # the file's data_version changed: at once
            with pytest.raises(KeyRejected, match="revoked"):
                await keys.authenticate(key)
        else:  # the NOTIFY arrives
            await poll(lambda: _refused(keys, key), bool, within=30)
    finally:
        await other.close()
        await keys.stop()


async def test_a_reconnection_empties_the_cache(storage: Storage) -> None:
    keys = KeyAuthenticator(storage)
    made, key = await KeyService(storage).create("o", "member")
    await keys.authenticate(key)
    async with storage.tx() as tx:
        await tx.run("UPDATE api_keys SET revoked_at=created_at WHERE key_id=?", [made.key_id])
    await keys._on_note("keel_reconnect", "")  # notifications may have been lost meanwhile
    assert await _refused(keys, key)


async def test_last_use_is_written_at_most_once_a_minute(storage: Storage) -> None:
    made, key = await KeyService(storage).create("o", "member")
    clock = Clock(keel_clock.now())
    keys = KeyAuthenticator(storage, now=clock)
    await keys.authenticate(key)
    first = await _last_used(storage, made.key_id)
    assert first is not None
    clock.value += 30
    await keys.authenticate(key)
    assert await _last_used(storage, made.key_id) == first
    clock.value += 31
    await keys.authenticate(key)
    assert (await _last_used(storage, made.key_id) or "") > first


async def test_the_audit_writer_flushes_and_stops_cleanly(storage: Storage) -> None:
    log = AuditLog(storage)
    await log.start()
    for n in range(600):  # more than one batch
        await log.record(AuditEntry(f"POST /n/{n}", "ok", "me", "o"))
    await log.flush()
    assert len(await _entries(storage)) == 600
    await asyncio.gather(*(log.record(AuditEntry("DELETE /x", "ok")) for _ in range(5)))
    await log.stop()  # writes what is still queued
    assert len(await _entries(storage)) == 605
    await log.record(AuditEntry("after", "refused", status=401))  # stopped: written at once
    rows = await _entries(storage)
    assert len(rows) == 606 and rows[0]["action"] == "after" and rows[0]["status"] == 401


async def _refused(keys: KeyAuthenticator, key: str) -> bool:
    try:
        await keys.authenticate(key)
    except KeyRejected:
        return True
    return False


async def _last_used(storage: Storage, key_id: str) -> str | None:
    async with storage.read() as tx:
        key = await get_key(tx, key_id)
    assert key is not None
    return key.last_used_at


async def _entries(storage: Storage) -> list[dict[str, object]]:
    async with storage.read() as tx:
        return await read_entries(tx, AuditQuery(limit=10_000))
