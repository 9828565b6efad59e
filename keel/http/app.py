"""`create_app(settings)`: builds storage, workers and routes inside the app's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from keel import __version__
from keel.errors import KeelError
from keel.metrics import Metrics
from keel.runtime import Runtime
from keel.settings import Settings
from keel.tracing import Tracing

from . import (
    a2a,
    admin,
    assistants,
    console,
    crons,
    mcp,
    meta,
    runs,
    state,
    store,
    threads,
    threadstream,
    threadstream_ws,
    webhooks,
    workers,
    workspace,
)
from .auth import METRICS_PATH, OPEN_PATHS, AuthMiddleware
from .custom import adopt_user_app, combined_lifespan, load_user_app, mounted
from .deps import Services
from .limits import BodyLimit
from .metrics import router as metrics_router
from .openapi import document_bodies
from .responses import JSON

log = logging.getLogger("keel.http")

EXPOSE = ["content-location", "x-pagination-total", "x-pagination-next", "location"]
# The API surfaces `http.disable_<surface>` turns off, in route order (as the reference groups
# them: thread state under threads; crons and runs on a thread under runs).
SURFACES: tuple[tuple[str, ModuleType], ...] = (
    ("assistants", assistants),
    ("threads", threads),
    ("threads", state),
    ("threads", workspace),
    ("threads", threadstream),
    ("threads", threadstream_ws),
    ("runs", crons),
    ("runs", runs),
    ("runs", webhooks),
    ("runs", workers),
    ("store", store),
    ("mcp", mcp),
    ("a2a", a2a),
)


def _lifespan(
    settings: Settings, metrics: Metrics, tracing: Tracing
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the process's runtime (storage, workers, relay, scheduler); stop it on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings, metrics, tracing)
        await rt.start()
        app.state.keel = Services(
            settings,
            rt.storage,
            rt.graphs,
            rt.hub,
            rt.workers,
            rt.runs,
            rt.scheduler,
            rt.guard,
            sandboxes=rt.sandboxes,
            metrics=metrics,
            tracing=tracing,
        )
        try:
            await rt.guard.start()  # built-in auth's background parts (the audit log's writer)
            yield
        finally:
            await rt.guard.stop()
            await rt.stop()

    return lifespan


def create_app(settings: Settings) -> ASGIApp:
    """The ASGI app. Nothing is opened until the lifespan starts; a custom app (`http.app`) is
    imported here, so a broken one fails the start."""
    http = settings.http
    user = load_user_app(settings)
    meta_on = http.enabled("meta")  # off: no /, /info, /docs, /redoc, /openapi.json
    # This app's metrics registry (keel.metrics); off: a recorder that does nothing.
    metrics = Metrics.build() if http.enabled("metrics") else Metrics.off()
    tracing = Tracing.from_env()  # OTLP traces when OTEL_EXPORTER_OTLP_*ENDPOINT is set
    app = FastAPI(
        title="Keel",
        version=__version__,
        lifespan=combined_lifespan(_lifespan(settings, metrics, tracing), user),
        default_response_class=JSON,
        openapi_url="/openapi.json" if meta_on else None,
        docs_url="/docs" if meta_on else None,
        redoc_url="/redoc" if meta_on else None,
        # FastAPI's own OpenTelemetry off: Keel makes the request spans (keel/http/tracing.py)
        # and its metrics; FastAPI's would duplicate them as soon as a graph installs a global
        # provider, and asks the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _add_cors(app, settings)
    _install_error_handlers(app)
    # Routes are tried in order: the docs and /ok, then the custom app's, then Keel's others.
    if meta_on:
        app.include_router(meta.health)
    if user is not None:
        adopt_user_app(app, user)
    _add_auth(app, settings, user)
    _add_body_limit(app, settings)
    _add_tracing(app, tracing)
    document_bodies(app)
    if settings.auth.openapi:
        _document_security(app, settings.auth.openapi)
    app.include_router(meta.router if meta_on else meta.disabled)
    if metrics.enabled:
        app.include_router(metrics_router)
    if http.enabled("console"):
        app.include_router(console.router)
    for surface, module in SURFACES:
        if http.enabled(surface):
            app.include_router(module.router)
    if settings.auth.builtin:
        app.include_router(admin.router)
    if http.mount_prefix:
        return mounted(app, http.mount_prefix, meta.ok)
    return app


def _add_auth(app: FastAPI, settings: Settings, user: Starlette | None) -> None:
    """Authentication innermost (inside CORS: refusals get CORS headers) and inside the custom
    app's middleware, unless `http.middleware_order` is `auth_first`: then outermost."""
    if not settings.auth.enabled:
        return
    custom = list(user.router.routes) if user is not None else []
    public = OPEN_PATHS | {METRICS_PATH} if settings.http.metrics_public else OPEN_PATHS
    auth = Middleware(
        AuthMiddleware,
        custom_routes=custom,
        protect_custom=settings.http.enable_custom_route_auth,
        open_paths=public,
    )
    if settings.http.middleware_order == "auth_first":
        app.user_middleware.insert(0, auth)
    else:
        app.user_middleware.append(auth)


def _document_security(app: FastAPI, security: Mapping[str, Any]) -> None:
    """`auth.openapi`: security schemes and requirements shown in /openapi.json (the schema
    describes the auth; the middleware enforces it)."""
    build = app.openapi
    merged: list[int] = []  # ids of the schemas already given the security section

    def openapi() -> dict[str, Any]:
        schema = build()
        if id(schema) not in merged:
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {}).update(
                security.get("securitySchemes") or {}
            )
            if "security" in security:
                schema["security"] = security["security"]
            for path, methods in (security.get("paths") or {}).items():
                for method, requirement in (methods or {}).items():
                    operation = schema.get("paths", {}).get(path, {}).get(method.lower())
                    if operation is not None:
                        operation["security"] = requirement
            merged.append(id(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_tracing(app: FastAPI, tracing: Tracing) -> None:
    """Request spans outermost, so a run created by a request carries the request's span."""
    if not tracing.enabled:
        return
    from .tracing import TraceRequests

    app.user_middleware.insert(0, Middleware(TraceRequests, tracing=tracing))


def _add_body_limit(app: FastAPI, settings: Settings) -> None:
    """The body limit right outside authentication (or innermost without auth): nothing of
    Keel's reads a body before it, and its 413s pass through CORS by default."""
    limit = Middleware(BodyLimit, max_bytes=settings.http.max_body_bytes)
    stack = app.user_middleware
    auth: object = AuthMiddleware
    at = next((i for i, m in enumerate(stack) if m.cls is auth), len(stack))
    stack.insert(at, limit)


def _add_cors(app: FastAPI, settings: Settings) -> None:
    cors = settings.http.cors or {}
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors.get("allow_origins", ["*"]),
        allow_methods=cors.get("allow_methods", ["*"]),
        allow_headers=cors.get("allow_headers", ["*"]),
        allow_credentials=cors.get("allow_credentials", False),
        allow_origin_regex=cors.get("allow_origin_regex"),
        expose_headers=cors.get("expose_headers", EXPOSE),
        max_age=cors.get("max_age", 600),
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeelError)
    async def keel_error(_: Request, exc: KeelError) -> Response:
        return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSON({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
