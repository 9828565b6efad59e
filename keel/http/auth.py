"""Authentication at the edge: an ASGI middleware that turns each protected request into a
`User` (or a 401/403 with `{"detail"}`) and records it in the audit log when it is refused or
changes something (keel/http/auditing.py), and `authorize`, which routes call for a `Scope`.

A WebSocket handshake is authenticated the same way (its headers, as a GET); a refused one is
answered with the same HTTP status and `{"detail"}` instead of the upgrade (the ASGI
`websocket.http.response` extension; without it the handshake is closed, which servers turn into
a 403)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.authentication import AuthCredentials
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.auth.guard import AUDITED_REQUEST, Guard
from keel.auth.handlers import Credentials
from keel.auth.scope import EVERYTHING
from keel.auth.scope import Scope as AuthScope
from keel.auth.user import User
from keel.errors import KeelError, NotFound
from keel.serde import dumps

from .auditing import AuditedSend, record_refusal

# Never authenticated: health, server info, the API docs; /metrics too with
# `http.metrics_public` (METRICS_PATH).
OPEN_PATHS = frozenset(
    {"/", "/ok", "/info", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
METRICS_PATH = "/metrics"
# The web console's static files (keel/http/console.py): no data in them; its API calls do.
CONSOLE_PREFIX = "/console"
STATE_KEY = "keel_user"
KINDS = ("http", "websocket")
REASON_BYTES = 120  # a close reason must fit in a control frame (123 bytes)
WS_DENIAL = "websocket.http.response"  # the ASGI extension answering a handshake with HTTP


class AuthMiddleware:
    """Authenticates every request except the open paths (and a custom app's routes unless
    `http.enable_custom_route_auth`); the user goes to `request.state.keel_user`,
    `request.user` and `request.auth`."""

    def __init__(
        self,
        app: ASGIApp,
        custom_routes: Sequence[BaseRoute] = (),
        protect_custom: bool = False,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.custom_routes = list(custom_routes)
        self.protect_custom = protect_custom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in KINDS or not self._protected(scope):
            await self.app(scope, receive, send)
            return
        guard: Guard | None = _guard(scope)
        if guard is None or not guard.enabled:
            await self.app(scope, receive, send)
            return
        token = AUDITED_REQUEST.set(True)  # the guard leaves this request's entry to the edge
        try:
            if scope["type"] == "websocket":
                await self._handshake(guard, scope, receive, send)
            else:
                await self._handle(guard, scope, receive, send)
        finally:
            AUDITED_REQUEST.reset(token)

    async def _handle(self, guard: Guard, scope: Scope, receive: Receive, send: Send) -> None:
        replay = _BodyReplay(receive)
        try:
            user = await guard.authenticate(_credentials(scope, replay))
        except KeelError as exc:
            await record_refusal(guard.audit, scope, exc)
            await _error(send, exc)
            return
        _log_in(scope, user)
        audited = AuditedSend(send, guard.audit, scope, user)
        try:
            await self.app(scope, replay.receive, audited)
        finally:
            await audited.finish()

    async def _handshake(self, guard: Guard, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket's handshake: authenticated as a GET with its headers (no body)."""
        try:
            user = await guard.authenticate(_credentials(scope, None))
        except KeelError as exc:
            await record_refusal(guard.audit, scope, exc)
            await _deny(scope, receive, send, exc)
            return
        _log_in(scope, user)
        await self.app(scope, receive, send)

    def _protected(self, scope: Scope) -> bool:
        path = _route_path(scope)
        if path in self.open_paths or scope.get("method") == "OPTIONS" or _console(path):
            return False
        if self.custom_routes and not self.protect_custom:
            return not any(r.matches(scope)[0] is not Match.NONE for r in self.custom_routes)
        return True


def _console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _guard(scope: Scope) -> Guard | None:
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "keel", None)
    return getattr(services, "guard", None)


class _BodyReplay:
    """Reads the body for an authenticate handler that asks for it, then hands it on."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body: bytes | None = None
        self._sent = False

    async def read(self) -> bytes:
        if self._body is None:
            chunks = []
            more = True
            while more:
                message = await self._receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            self._body = b"".join(chunks)
        return self._body

    async def receive(self) -> Message:
        if self._body is None:
            return await self._receive()
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        return await self._receive()


def close_reason(detail: str) -> str:
    """`detail` cut to what a WebSocket close frame carries (whole UTF-8 characters)."""
    return detail.encode()[:REASON_BYTES].decode(errors="ignore")


def _log_in(scope: Scope, user: User) -> None:
    scope.setdefault("state", {})[STATE_KEY] = user
    scope["user"] = user
    scope["auth"] = AuthCredentials(list(user.permissions))


async def _no_body() -> bytes:
    return b""


def _credentials(scope: Scope, replay: _BodyReplay | None) -> Credentials:
    """A request's credentials; a WebSocket handshake (`replay` None) is a GET without body."""
    return Credentials(
        method=scope.get("method", "GET"),
        path=_route_path(scope),
        headers=list(scope.get("headers", ())),
        query_params=HTTPConnection(scope).query_params,
        path_params=dict(scope.get("path_params") or {}),
        scope=scope,
        request=Request(scope, replay.receive) if replay is not None else HTTPConnection(scope),
        read_body=replay.read if replay is not None else _no_body,
    )


def _refusal(exc: KeelError) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = dumps({"detail": exc.detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return headers, body


async def _error(send: Send, exc: KeelError) -> None:
    headers, body = _refusal(exc)
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _deny(scope: Scope, receive: Receive, send: Send, exc: KeelError) -> None:
    """Refuse a WebSocket handshake: the HTTP refusal itself when the server can send one."""
    await receive()  # websocket.connect
    if WS_DENIAL not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008, "reason": close_reason(exc.detail)})
        return
    headers, body = _refusal(exc)
    start = {"type": "websocket.http.response.start", "status": exc.status_code}
    await send({**start, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def current_user(request: HTTPConnection) -> User | None:
    user: User | None = getattr(request.state, STATE_KEY, None)
    return user


async def authorize(request: HTTPConnection, resource: str, action: str, value: Any) -> AuthScope:
    """The scope the request's user may `action` `resource` in (everything without auth)."""
    guard: Guard = request.app.state.keel.guard
    if not guard.enabled:
        return EVERYTHING
    return await guard.authorize(current_user(request), resource, action, value)


def hidden(what: str, ident: str) -> NotFound:
    return NotFound(f"{what} '{ident}' not found")
