"""A project's `langgraph_sdk.Auth` instance: loaded from `auth.path`, its `@auth.authenticate`
called with the arguments it names, its `@auth.on` handlers looked up and their results read."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext

from keel.auth.filters import Filter, FilterError, check_filter
from keel.auth.user import AuthenticationError, User, normalize
from keel.errors import ConfigError, Forbidden, KeelError
from keel.imports import load_attr

# What `@auth.authenticate` may ask for by name.
INJECTABLE = (
    "request",
    "headers",
    "authorization",
    "path",
    "method",
    "query_params",
    "path_params",
    "scope",
    "scopes",
    "user",
    "body",
)


class HandlerError(KeelError):
    """An `Auth.exceptions.HTTPException` raised by a handler: its own status and detail."""

    def __init__(self, status_code: int, detail: str, headers: Mapping[str, str] | None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.headers = dict(headers or {})


@dataclass
class Credentials:
    """What the HTTP edge knows of a request when it authenticates it."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    query_params: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    scope: Mapping[str, Any] = field(default_factory=dict)
    request: Any = None
    read_body: Callable[[], Awaitable[bytes]] | None = None

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None


def load_auth(spec: str, base_dir: Path) -> Auth:
    """The `Auth` instance `auth.path` names ("./auth.py:auth" or "package.module:auth")."""
    obj = load_attr(spec, base_dir, "auth.path")
    if not isinstance(obj, Auth):
        raise ConfigError(f"auth.path: {spec!r} is not a langgraph_sdk.Auth instance")
    check_authenticate(obj)
    return obj


def check_authenticate(auth: Auth) -> None:
    """Start-up check: every required parameter of `@auth.authenticate` is one Keel supplies."""
    fn = auth._authenticate_handler
    if fn is None:
        return
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in INJECTABLE and param.default is param.empty:
            raise ConfigError(
                f"@auth.authenticate handler {fn.__name__!r} takes a parameter {name!r} Keel "
                f"cannot supply; supported: {', '.join(INJECTABLE)}"
            )


async def authenticate(auth: Auth, creds: Credentials) -> User | None:
    """Run `@auth.authenticate` (None when the project has none)."""
    fn = auth._authenticate_handler
    if fn is None:
        return None
    kwargs = {}
    for name in inspect.signature(fn).parameters:
        if name in INJECTABLE:
            kwargs[name] = await _argument(name, creds)
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(**kwargs)
        else:
            result = await asyncio.to_thread(fn, **kwargs)  # type: ignore[arg-type]
    except Auth.exceptions.HTTPException as exc:
        raise HandlerError(exc.status_code, str(exc.detail), exc.headers) from exc
    if result is None:
        raise AuthenticationError("Authentication handler returned no user")
    return normalize(result)


async def _argument(name: str, creds: Credentials) -> Any:
    if name == "headers":
        return {k.lower(): v for k, v in creds.headers}
    if name == "authorization":
        return creds.header(b"authorization")
    if name == "body":
        return _json_body(await creds.read_body() if creds.read_body is not None else b"")
    if name == "scopes":
        return list(creds.scope.get("auth_scopes", ()))
    if name == "user":
        return None
    return getattr(creds, name)


def _json_body(raw: bytes) -> Any:
    """The body as `@auth.authenticate` gets it: parsed JSON (None when empty; the bytes when
    it is not JSON)."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def find_handler(auth: Auth, resource: str, action: str) -> Callable[..., Any] | None:
    """The one handler for (resource, action): most specific first, the last registered of a
    key wins, the global `@auth.on` last."""
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        handlers = auth._handlers.get(key)
        if handlers:
            return handlers[-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


async def decide(
    handler: Callable[..., Any], user: User, resource: str, action: str, value: Any
) -> Filter | None:
    """Call a handler; None allows, a filter narrows, anything else refuses."""
    ctx = AuthContext(
        permissions=list(user.permissions),
        user=user,
        resource=resource,  # type: ignore[arg-type]
        action=action,  # type: ignore[arg-type]
    )
    try:
        result = await handler(ctx=ctx, value=value)
    except Auth.exceptions.HTTPException as exc:
        raise HandlerError(exc.status_code, str(exc.detail), exc.headers) from exc
    except AssertionError as exc:
        raise Forbidden(str(exc) or "Forbidden") from exc
    if result is None or result is True:
        return None
    if result is False:
        raise Forbidden("Forbidden")
    if not isinstance(result, dict):
        raise FilterError(
            "Auth handler returned an invalid result: expected a filter dict, None or a "
            f"boolean, got {type(result).__name__}"
        )
    return check_filter(result) if result else None
