"""`http.app` and `http.mount_prefix`: a project's own Starlette/FastAPI app merged into Keel's,
and the whole server served under a path prefix.

The merge follows the reference server: the app's routes come before Keel's, so they replace
Keel's routes on the same paths, except `/ok`, `/docs` and `/openapi.json` (and `/redoc`);
its middleware wraps the whole server (outermost); its exception handlers win over Keel's for
the same exception class; its lifespan runs inside Keel's (Keel's runtime is up first and down
last); Keel's app shares the app's `state`, so `request.app.state` set by its lifespan works.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi import exception_handlers as fastapi_defaults
from fastapi.openapi.utils import get_openapi
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from keel.errors import ConfigError
from keel.graphs import add_local_dependencies
from keel.imports import load_attr
from keel.runtime import export_env
from keel.settings import Settings

# Handlers every FastAPI app carries: merging them would replace Keel's error format.
FASTAPI_DEFAULT_HANDLERS = {
    fastapi_defaults.http_exception_handler,
    fastapi_defaults.request_validation_exception_handler,
    fastapi_defaults.websocket_request_validation_exception_handler,
}

KeelLifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[None]]
StateLifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Mapping[str, Any]]]


def load_user_app(settings: Settings) -> Starlette | None:
    """Import `http.app` (after the config's env and local dependencies are in place)."""
    spec = settings.http.app
    if spec is None:
        return None
    export_env(settings)
    add_local_dependencies(settings.dependencies, settings.base_dir)
    app = load_attr(spec, settings.base_dir, "http.app")
    if not isinstance(app, Starlette):
        raise ConfigError(
            f"http.app: {spec!r} is not a Starlette or FastAPI application "
            f"(it is a {type(app).__name__})"
        )
    return app


def adopt_user_app(app: FastAPI, user: Starlette) -> None:
    """Add `user`'s routes to `app` now (after the routes it cannot replace, before Keel's
    others); take its middleware, exception handlers and state."""
    routes = list(user.router.routes)
    app.router.routes.extend(routes)
    app.user_middleware = [*user.user_middleware, *app.user_middleware]
    for exc, handler in user.exception_handlers.items():
        if handler not in FASTAPI_DEFAULT_HANDLERS:
            app.exception_handlers[exc] = handler
    app.state = user.state
    _user_operations_win(app, routes)


def _user_operations_win(app: FastAPI, user_routes: list[BaseRoute]) -> None:
    """In /openapi.json, a path and method the custom app replaces shows the custom app's
    operation: FastAPI keeps the last route listed for each, so the user's go last there."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            ours = [r for r in app.routes if not any(r is u for u in user_routes)]
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, routes=[*ours, *user_routes]
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def combined_lifespan(
    keel: KeelLifespan, user: Starlette | None
) -> KeelLifespan | StateLifespan:
    """Keel's lifespan around the user app's, which gets its own app object (as it expects) and
    may yield request state."""
    if user is None:
        return keel

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Mapping[str, Any]]:
        async with keel(app), user.router.lifespan_context(user) as state:
            yield dict(state or {})

    return lifespan


def mounted(app: FastAPI, prefix: str, ok: Callable[..., Any]) -> Starlette:
    """Everything under `prefix`; the health check also at `/` and `/ok` (load balancers)."""
    outer = Starlette(
        routes=[
            Route("/", ok, methods=["GET"]),
            Route("/ok", ok, methods=["GET"]),
            Mount(prefix, app=app),
        ],
        lifespan=app.router.lifespan_context,
        exception_handlers=dict(app.exception_handlers),
    )
    outer.state = app.state
    return outer
