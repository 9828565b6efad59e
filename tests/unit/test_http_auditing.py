"""The audit log's HTTP edge on a small app behind Keel's `AuthMiddleware`: refusals the edge
makes itself (401, a quota's 429) and those routes answer (413), one entry per request however
its body is sent, nothing for failures that are not refusals (422, 500) or for reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.middleware import Middleware

from keel.auth.audit import AuditLog, AuditQuery, read_entries
from keel.auth.guard import AUDITED_REQUEST, AuditEntry, Guard
from keel.auth.quotas import Quotas
from keel.auth.ratelimit import MemoryLimiter
from keel.auth.user import AuthenticationError, User
from keel.errors import InvalidInput, PayloadTooLarge, TooManyRequests
from keel.http.app import _install_error_handlers
from keel.http.auth import AuthMiddleware
from keel.settings import AuthSettings
from keel.settings.quotas import parse_quotas
from keel.storage.sqlite import SqliteStorage

THREAD = "6f1c2b9e-0000-4000-8000-000000000001"


class Tokens:
    """An authenticator of fixed tokens: `good`, and `busy` (over its quota)."""

    def claims(self, token: str) -> bool:
        return True

    async def authenticate(self, token: str) -> User:
        if token == "busy":
            raise TooManyRequests("Too many requests", 2.0)
        if token != "good":
            raise AuthenticationError("Invalid credentials")
        return User("tester", org="o", role="member")


def _app(guard: Guard) -> FastAPI:
    app = FastAPI(middleware=[Middleware(AuthMiddleware)])
    app.state.keel = SimpleNamespace(guard=guard)
    _install_error_handlers(app)

    @app.post("/threads")
    async def create() -> Any:
        return {"thread_id": THREAD}

    @app.post("/threads/search")
    async def search() -> Any:
        return []

    @app.post("/threads/{thread_id}/runs/stream")
    async def stream(thread_id: str) -> Any:
        async def events() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"event: values\ndata: {n}\n\n".encode()

        where = {"Content-Location": f"/threads/{thread_id}/runs/run-1"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=where)

    @app.put("/store/items")
    async def put(request: Request) -> Any:
        if len(await request.body()) > 10:
            raise PayloadTooLarge("Request body too large")
        raise InvalidInput("value: field required")

    @app.post("/boom")
    async def boom() -> Any:
        raise RuntimeError("bug")

    return app


async def _entries(storage: SqliteStorage) -> list[tuple[Any, ...]]:
    async with storage.read() as tx:
        rows = await read_entries(tx, AuditQuery(limit=1000))
    cols = ("action", "outcome", "status", "identity", "resource_id", "detail")
    return [tuple(r[c] for c in cols) for r in reversed(rows)]


async def test_one_entry_per_refused_or_changing_request(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "k.db")
    await storage.open()
    try:
        guard = Guard(AuthSettings(api_keys=True), authenticators=[Tokens()])
        guard.audit = AuditLog(storage)  # not started: each entry is written at once
        transport = httpx.ASGITransport(_app(guard), raise_app_exceptions=False)
        good = {"x-api-key": "good"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.post("/threads", headers={"x-api-key": "bad"})).status_code == 401
            busy = await http.post("/threads", headers={"x-api-key": "busy"})
            assert busy.status_code == 429 and busy.headers["retry-after"] == "2"
            big = await http.put("/store/items", content=b"x" * 100, headers=good)
            assert big.status_code == 413
            assert (await http.put("/store/items", content=b"{}", headers=good)).status_code == 422
            assert (await http.post("/boom", headers=good)).status_code == 500
            assert (await http.post("/threads/search", headers=good)).status_code == 200
            assert (await http.post("/threads", headers=good)).status_code == 200
            streamed = await http.post(f"/threads/{THREAD}/runs/stream", headers=good)
            assert streamed.text.count("event: values") == 3
        assert await _entries(storage) == [
            ("POST /threads", "refused", 401, None, None, "Invalid credentials"),
            ("POST /threads", "refused", 429, None, None, "Too many requests"),
            ("PUT /store/items", "refused", 413, "tester", None, "Request body too large"),
            ("POST /threads", "ok", 200, "tester", THREAD, None),
            ("POST /threads/{thread_id}/runs/stream", "ok", 200, "tester", "run-1", None),
        ]
    finally:
        await storage.close()


async def test_a_quota_refusal_is_one_entry_naming_the_caller(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "k.db")
    await storage.open()
    try:
        config = {"default": {"requests_per_second": 0.001, "burst": 1}}
        settings = AuthSettings(api_keys=True, quotas=config)
        quotas = Quotas(parse_quotas(config), MemoryLimiter())
        guard = Guard(settings, authenticators=[Tokens()], quotas=quotas)
        guard.audit = AuditLog(storage)
        transport = httpx.ASGITransport(_app(guard))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            good = {"x-api-key": "good"}
            assert (await http.post("/threads/search", headers=good)).status_code == 200
            assert (await http.post("/threads/search", headers=good)).status_code == 429
        entries = await _entries(storage)
        assert [e[:4] for e in entries] == [("POST /threads/search", "refused", 429, "tester")]
        # Outside a request the edge audits (a cron's run), the guard records a refusal itself.
        await guard._record(AuditEntry("quota.refused", "refused", "cron", "o", None, 429))
        token = AUDITED_REQUEST.set(True)
        await guard._record(AuditEntry("quota.refused", "refused", "edge", "o", None, 429))
        AUDITED_REQUEST.reset(token)
        assert [e[3] for e in await _entries(storage)] == ["tester", "cron"]
    finally:
        await storage.close()
