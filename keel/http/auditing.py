"""The audit log's HTTP edge: one entry per audited request (see keel/auth/audit.py for which).

`AuditedSend` wraps a protected request's `send`: when the response starts, its status says
whether the request is audited; the entry is recorded before the body goes out (the body's first
message is read when it is a small JSON document: the `detail` of a refusal, the id of a create).
The entry names the route by its template (`POST /threads/{thread_id}/runs`) and the resource by
the run's `Content-Location`, else the most specific id in the path, else the id a create
answered with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.routing import Match
from starlette.types import Message, Scope, Send

from keel.auth.audit import OK, REFUSED, scrub
from keel.auth.guard import AuditEntry, AuditSink
from keel.auth.user import User
from keel.errors import KeelError

REFUSED_STATUSES = frozenset({401, 403, 404, 409, 413, 429})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POST routes that only read.
READ_POSTS = frozenset(
    {
        "/assistants/search",
        "/assistants/count",
        "/assistants/{assistant_id}/versions",
        "/threads/search",
        "/threads/count",
        "/threads/{thread_id}/history",
        "/threads/{thread_id}/state/checkpoint",
        "/runs/crons/search",
        "/runs/crons/count",
        "/store/items/search",
        "/store/namespaces",
    }
)
ID_NAMES = ("run_id", "cron_id", "key_id", "thread_id", "assistant_id")
MAX_PARSED = 65536
MAX_PATH = 200


def outcome(method: str, template: str | None, status: int) -> str | None:
    """`refused`, `ok`, or None: the request is not audited."""
    if status in REFUSED_STATUSES:
        return REFUSED
    if 200 <= status < 300 and method in MUTATING:
        if method == "POST" and template in READ_POSTS:
            return None
        return OK
    return None


def route_of(scope: Scope) -> tuple[str | None, Mapping[str, Any]]:
    """The route template and path parameters of the request (matched again when the app did
    not route it: a request refused before it reached the app)."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None), scope.get("path_params") or {}
    router = getattr(scope.get("app"), "router", None)
    for candidate in getattr(router, "routes", ()):
        match, child = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", None), child.get("path_params") or {}
    return None, {}


def action_of(scope: Scope, template: str | None) -> str:
    """`<METHOD> <route template>`; a path no route matches is written as given, scrubbed."""
    if template is None:
        template = scrub(str(scope.get("path", ""))[:MAX_PATH]) or ""
    return f"{scope.get('method', 'GET')} {template}"  # a WebSocket handshake is a GET


def _first_id(values: Mapping[str, Any]) -> str | None:
    for name in ID_NAMES:
        value = values.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _json(headers: list[tuple[bytes, bytes]], body: bytes | None) -> dict[str, Any] | None:
    if body is None or len(body) > MAX_PARSED:
        return None
    if not any(k == b"content-type" and b"json" in v for k, v in headers):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


class AuditedSend:
    """The `send` of a protected request: records its audit entry, if any, exactly once."""

    def __init__(self, send: Send, sink: AuditSink, scope: Scope, user: User | None) -> None:
        self._send = send
        self._sink = sink
        self._scope = scope
        self._user = user
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        # Decided once the response starts: the route, the outcome, the resource it names.
        self._template: str | None = None
        self._result: str | None = None
        self._resource: str | None = None
        self._pending = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
            self._headers = list(message.get("headers") or ())
            self._template, params = route_of(self._scope)
            self._result = outcome(self._scope["method"], self._template, self._status)
            self._resource = self._resource_id(params)
            self._pending = self._result is not None
            if self._result == OK and self._resource is not None:
                await self.record(None)  # the body is not needed: recorded before it is sent
        elif message["type"] == "http.response.body" and self._pending:
            whole = not message.get("more_body", False)
            await self.record(message.get("body", b"") if whole else None)
        await self._send(message)

    async def finish(self) -> None:
        """After the app returned (or failed, or was cancelled once it had answered): a response
        whose body never came is recorded now."""
        if self._pending:
            await self.record(None)

    async def record(self, body: bytes | None) -> None:
        self._pending = False
        result, resource_id = self._result, self._resource
        if result is None:
            return
        detail = None
        if result == REFUSED or resource_id is None:  # the body is read only for these
            document = _json(self._headers, body) or {}
            if result == REFUSED:
                detail = str(document.get("detail", ""))
            else:
                resource_id = _first_id(document)
        await self._sink.record(
            AuditEntry(
                action_of(self._scope, self._template),
                result,
                self._user.identity if self._user is not None else None,
                self._user.org if self._user is not None else None,
                resource_id,
                self._status,
                detail,
            )
        )

    def _resource_id(self, params: Mapping[str, Any]) -> str | None:
        for key, value in self._headers:
            if key == b"content-location":
                return value.decode("latin-1").rstrip("/").rsplit("/", 1)[-1]
        return _first_id(params)


async def record_refusal(sink: AuditSink, scope: Scope, exc: KeelError) -> None:
    """The entry of a request the edge refused itself (authentication, quotas): the credential's
    owner when the refusal names one (a revoked key), never the credential."""
    template, params = route_of(scope)
    result = outcome(scope.get("method", "GET"), template, exc.status_code)
    if result is None:  # not a refusal: a failing authentication handler (500)
        return
    await sink.record(
        AuditEntry(
            action_of(scope, template),
            result,
            getattr(exc, "identity", None),
            getattr(exc, "org", None),
            _first_id(params),
            exc.status_code,
            exc.detail,
        )
    )
