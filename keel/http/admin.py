"""`/keel/*`: Keel's own administration, for the admins of an organisation (built-in auth).

- `GET /keel/audit`: the organisation's audit log, newest first (`since`, `outcome`, `limit`,
  `offset`; `X-Pagination-Total`). Entries without an organisation (requests whose credentials
  named nobody) are the operator's: `keel audit` on the database.
- `POST /keel/keys`, `GET /keel/keys`, `DELETE /keel/keys/{key_id}`: the organisation's API
  keys. An admin mints keys for their own organisation only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from keel.auth.audit import (
    REFUSED,
    AuditLog,
    AuditQuery,
    count_entries,
    parse_since,
    read_entries,
)
from keel.auth.keys import KeyAuthenticator, KeyService
from keel.auth.user import User
from keel.errors import Forbidden, InvalidInput, NotFound

from .auth import current_user
from .deps import body, query_int, query_list, services
from .responses import JSON
from .schemas import Body

router = APIRouter(prefix="/keel", tags=["admin"])
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1


class KeyCreate(Body):
    role: str
    name: str | None = None
    expires_days: float | None = Field(default=None, gt=0)
    org: str | None = None


def _admin(request: Request, permission: str) -> User:
    return services(request).guard.require_admin(current_user(request), permission)


def _keys(request: Request) -> KeyService:
    guard = services(request).guard
    found = [a for a in guard.authenticators if isinstance(a, KeyAuthenticator)]
    if not found:
        raise NotFound("API keys are not enabled (auth.api_keys)")
    return KeyService(services(request).storage, found[0])


def _one(request: Request, key: str) -> str | None:
    values = query_list(request, key)
    return values[-1] if values else None


def _audit_query(request: Request, admin: User) -> AuditQuery:
    org = _one(request, "org")
    if org is not None and org != admin.org:
        raise Forbidden("Admins read their own organisation's audit log")
    since = _one(request, "since")
    outcome = _one(request, "outcome")
    if outcome not in (None, "ok", REFUSED):
        raise InvalidInput("outcome must be 'ok' or 'refused'")
    limit, offset = query_int(request, "limit", 100), query_int(request, "offset", 0)
    if not 1 <= limit <= MAX_LIMIT or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}, offset within 0..{MAX_OFFSET}")
    return AuditQuery(admin.org, parse_since(since) if since else None, outcome, limit, offset)


@router.get("/audit")
async def audit(request: Request) -> Any:
    admin = _admin(request, "audit:read")
    query = _audit_query(request, admin)
    log = services(request).guard.audit
    if isinstance(log, AuditLog):
        await log.flush()  # what this server recorded so far is readable
    async with services(request).storage.read() as tx:
        rows = await read_entries(tx, query)
        total = await count_entries(tx, query)
    return JSON(rows, headers={"X-Pagination-Total": str(total)})


@router.get("/keys")
async def list_keys(request: Request) -> Any:
    admin = _admin(request, "keys:manage")
    return JSON([k.view() for k in await _keys(request).keys(admin.org)])


@router.post("/keys")
async def create_key(request: Request) -> Any:
    admin = _admin(request, "keys:manage")
    data = await body(request, KeyCreate)
    if data.org is not None and data.org != admin.org:
        raise Forbidden("Admins create keys for their own organisation only")
    key, token = await _keys(request).create(
        admin.org, data.role, data.name, data.expires_days, actor=admin.identity
    )
    return JSON({"key": token, **key.view()})


@router.delete("/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> Any:
    admin = _admin(request, "keys:manage")
    return JSON((await _keys(request).revoke(key_id, org=admin.org)).view())
