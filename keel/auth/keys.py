"""Keel's built-in API keys (`"auth": {"api_keys": true}`; created with `keel keys create`).

A key reads `keel_<key_id>_<secret>`: 16 hex digits naming the key (shown by `keel keys list`,
written to the audit log), then 64 hex digits: 256 bits from `secrets`. Only the SHA-256 of the
whole key is stored, and it is compared in constant time. A slow password hash (bcrypt, argon2)
exists to make guessing a *low-entropy* secret expensive; a 256-bit random secret cannot be
guessed, so it would only add milliseconds of CPU to every request.

Verified keys are cached in memory, and a cached key is still checked on every use: its expiry
against the clock, its revocation as soon as this process or another one learns of it:
- a key changed by this process (the admin endpoints) is dropped from the cache at once;
- SQLite: `keel keys` in another process commits to the same file, which changes the file's
  `data_version`: checked on every request (a pragma, no I/O), any change empties the cache;
- PostgreSQL: every change sends NOTIFY `keel_keys`; each process listens and drops the key. A
  lost notification (the LISTEN connection was down) is covered by emptying the cache on every
  reconnection, and at worst by `CACHE_SECONDS`: a cached key is read again at least that often.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from keel import clock
from keel.auth import roles
from keel.auth.user import AuthenticationError, User
from keel.errors import InvalidInput, NotFound
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

log = logging.getLogger("keel.auth")
PREFIX = "keel_"
KEY_RE = re.compile(r"keel_([0-9a-f]{16})_([0-9a-f]{64})")
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
KEYS_CHANNEL = "keel_keys"
CACHE_SECONDS = 30.0  # a cached key is read from the database again at least this often
TOUCH_SECONDS = 60.0  # `last_used_at` is written at most this often per key and process
MAX_DAYS = 36500.0


@dataclasses.dataclass(frozen=True)
class ApiKey:
    key_id: str
    hash: str
    org: str
    role: str
    created_at: str
    name: str | None = None
    created_by: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> ApiKey:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def view(self) -> dict[str, Any]:
        """What `keel keys list` and `GET /keel/keys` show: everything but the hash."""
        out = dataclasses.asdict(self)
        del out["hash"]
        return out


COLUMNS = ", ".join(f.name for f in dataclasses.fields(ApiKey))


class KeyRejected(AuthenticationError):
    """401 for an API key; names the key (never its secret) when it is a known one."""

    def __init__(self, detail: str, key: ApiKey | None = None) -> None:
        super().__init__(detail)
        self.identity = identity_of(key.key_id) if key is not None else None
        self.org = key.org if key is not None else None


def identity_of(key_id: str) -> str:
    return f"key:{key_id}"


def new_key() -> tuple[str, str]:
    """A fresh (key_id, key)."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_hex(32)}"


def parse_key(token: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = KEY_RE.fullmatch(token)
    return match.group(1) if match else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------------ queries
async def insert_key(tx: Tx, key: ApiKey) -> None:
    values = dataclasses.astuple(key)
    marks = ", ".join("?" for _ in values)
    await tx.run(f"INSERT INTO api_keys ({COLUMNS}) VALUES ({marks})", values)


async def get_key(tx: Tx, key_id: str) -> ApiKey | None:
    row = await tx.one(f"SELECT {COLUMNS} FROM api_keys WHERE key_id=?", [key_id])
    return None if row is None else ApiKey.from_row(row)


async def list_keys(tx: Tx, org: str | None) -> list[ApiKey]:
    where, params = ("WHERE org=?", [org]) if org is not None else ("", [])
    rows = await tx.all(
        f"SELECT {COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params
    )
    return [ApiKey.from_row(r) for r in rows]


async def touch_key(tx: Tx, key_id: str, at: str) -> None:
    await tx.run("UPDATE api_keys SET last_used_at=? WHERE key_id=?", [at, key_id])


# ------------------------------------------------------------------ validation
def check_role(role: Any) -> str:
    if not isinstance(role, str) or role not in roles.ROLES:
        raise InvalidInput(f"role must be one of {', '.join(roles.ROLES)}; got {role!r}")
    return role


def _printable(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 200 and value.isprintable()


def check_org(org: Any) -> str:
    if not _printable(org) or not org.strip():
        raise InvalidInput("org must be a non-empty printable string of at most 200 characters")
    return str(org)


def check_name(name: Any) -> str | None:
    if name is not None and not _printable(name):
        raise InvalidInput("name must be a printable string of at most 200 characters")
    return name or None


def check_days(days: Any) -> float | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= MAX_DAYS:
        raise InvalidInput(f"expires must be a number of days > 0 and <= {MAX_DAYS:g}")
    return float(days)


# ------------------------------------------------------------------ key changes
AuditHook = Callable[[Tx, str, ApiKey, str], Any]  # (tx, action, key, actor): an awaitable


class KeyService:
    """Creating, listing and revoking keys: `keel keys` and the admin endpoints."""

    def __init__(
        self,
        storage: Storage,
        authenticator: KeyAuthenticator | None = None,
        audit: AuditHook | None = None,
    ) -> None:
        self.storage = storage
        self.authenticator = authenticator  # this process's cache, told of changes at once
        self.audit = audit  # records a change in the change's transaction (`keel keys`)

    async def create(
        self,
        org: Any,
        role: Any,
        name: Any = None,
        expires_days: Any = None,
        actor: str | None = None,
    ) -> tuple[ApiKey, str]:
        """The new key's row and the key itself (shown once, never stored)."""
        days = check_days(expires_days)
        key_id, token = new_key()
        now = clock.now()
        key = ApiKey(
            key_id,
            digest(token),
            check_org(org),
            check_role(role),
            clock.iso(now),
            name=check_name(name),
            created_by=actor,
            expires_at=None if days is None else clock.iso(now + days * 86400),
        )
        async with self.storage.tx() as tx:
            await insert_key(tx, key)
            await self._changed(tx, "keys.create", key, actor)
        return key, token

    async def keys(self, org: str | None = None) -> list[ApiKey]:
        async with self.storage.read() as tx:
            return await list_keys(tx, org)

    async def revoke(self, key_id: str, org: str | None = None, actor: str | None = None) -> ApiKey:
        """Revoke `key_id` (of `org`, when given); revoking twice changes nothing."""
        if not KEY_ID_RE.fullmatch(key_id):
            raise NotFound(f"API key '{key_id[:100]}' not found")
        async with self.storage.tx() as tx:
            key = await get_key(tx, key_id)
            if key is None or (org is not None and key.org != org):
                raise NotFound(f"API key '{key_id}' not found")
            if key.revoked_at is None:
                await tx.run(
                    "UPDATE api_keys SET revoked_at=? WHERE key_id=?", [clock.iso(), key_id]
                )
                key = await get_key(tx, key_id) or key
                await self._changed(tx, "keys.revoke", key, actor)
        if self.authenticator is not None:
            self.authenticator.forget(key_id)
        return key

    async def _changed(self, tx: Tx, action: str, key: ApiKey, actor: str | None) -> None:
        await tx.notify(KEYS_CHANNEL, key.key_id)
        if self.audit is not None and actor is not None:
            await self.audit(tx, action, key, actor)


# ------------------------------------------------------------------ authentication
@dataclasses.dataclass
class _Cached:
    key: ApiKey
    loaded: float  # time.monotonic() when read from the database
    expires: float | None  # epoch seconds
    last_used: float | None  # epoch seconds, as written to the database


class KeyAuthenticator:
    """The `Authenticator` of `keel_...` keys (see the module's docstring for the cache)."""

    def __init__(self, storage: Storage, now: Callable[[], float] = clock.now) -> None:
        self.storage = storage
        self.now = now
        self._cache: dict[str, _Cached] = {}
        self._version: Callable[[], int] | None = getattr(storage, "data_version", None)
        self._seen_version: int | None = None
        self._permissions = {role: sorted(p) for role, p in roles.ROLES.items()}
        self._listener: asyncio.Task[None] | None = None

    def claims(self, token: str) -> bool:
        return token.startswith(PREFIX)

    async def authenticate(self, token: str) -> User:
        key_id = parse_key(token)
        if key_id is None:
            raise KeyRejected("Invalid API key")
        cached = await self._cached(key_id)
        if cached is None or not hmac.compare_digest(cached.key.hash, digest(token)):
            raise KeyRejected("Invalid API key")
        key, now = cached.key, self.now()
        if key.revoked_at is not None:
            raise KeyRejected("API key revoked", key)
        if cached.expires is not None and cached.expires <= now:
            raise KeyRejected("API key expired", key)
        if cached.last_used is None or now - cached.last_used >= TOUCH_SECONDS:
            await self._touch(cached, now)
        return User(
            identity_of(key_id),
            display_name=key.name or identity_of(key_id),
            permissions=self._permissions.get(key.role, ()),
            org=key.org,
            role=key.role,
            fields={"key_id": key_id, "auth_method": "api_key"},
        )

    def forget(self, key_id: str | None = None) -> None:
        """Drop one cached key (None: all of them)."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def _cached(self, key_id: str) -> _Cached | None:
        if self._version is not None:
            version = self._version()
            if version != self._seen_version:  # another process changed the file
                self._cache.clear()
                self._seen_version = version
        cached = self._cache.get(key_id)
        if cached is not None and time.monotonic() - cached.loaded < CACHE_SECONDS:
            return cached
        async with self.storage.read() as tx:
            key = await get_key(tx, key_id)
        if key is None:
            self._cache.pop(key_id, None)
            return None
        cached = _Cached(key, time.monotonic(), _epoch(key.expires_at), _epoch(key.last_used_at))
        self._cache[key_id] = cached
        return cached

    async def _touch(self, cached: _Cached, now: float) -> None:
        cached.last_used = now
        try:
            async with self.storage.tx() as tx:
                await touch_key(tx, cached.key.key_id, clock.iso(now))
        except Exception as exc:  # bookkeeping only: the request goes on
            log.warning("recording the use of API key %s failed: %s", cached.key.key_id, exc)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.storage.shared and self._listener is None:
            listen = self.storage.listen([KEYS_CHANNEL], self._on_note)
            self._listener = asyncio.create_task(listen, name="keel-keys-listen")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _on_note(self, channel: str, payload: str) -> None:
        # "keel_reconnect": notifications may have been lost meanwhile.
        self.forget(payload if channel == KEYS_CHANNEL else None)


def _epoch(value: str | None) -> float | None:
    return None if value is None else clock.parse(value)
