"""`create_app(settings)`: builds storage, workers and routes inside the app's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.errors import KeelError
from keel.runtime import Runtime
from keel.settings import Settings

from . import assistants, crons, meta, runs, state, store, threads
from .deps import Services
from .responses import JSON

log = logging.getLogger("keel.http")

EXPOSE = ["content-location", "x-pagination-total", "x-pagination-next", "location"]


def _lifespan(
    settings: Settings,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the process's runtime (storage, workers, relay, scheduler); stop it on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings)
        await rt.start()
        app.state.keel = Services(
            settings, rt.storage, rt.graphs, rt.hub, rt.workers, rt.runs, rt.scheduler
        )
        try:
            yield
        finally:
            await rt.stop()

    return lifespan


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app. Nothing is opened until the lifespan starts."""
    app = FastAPI(
        title="Keel",
        version=_version(),
        lifespan=_lifespan(settings),
        default_response_class=JSON,
    )
    cors = settings.cors or {}
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
    _install_error_handlers(app)
    for module in (meta, assistants, threads, state, crons, runs, store):
        app.include_router(module.router)
    return app


def _version() -> str:
    from keel import __version__

    return __version__


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeelError)
    async def keel_error(_: Request, exc: KeelError) -> Response:
        return JSON({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        return JSON({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return JSON(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
