"""A project's own FastAPI app (`http.app`), for tests/e2e/test_http_config.py: routes that
add to and replace built-in ones, middleware, an exception handler, a lifespan that sets state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


class Teapot(Exception):
    """Raised by a route; the app's own handler turns it into a 418."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.greeting = "hello from the lifespan"
    yield


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def tag(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["x-custom-app"] = "yes"
    return response


@app.exception_handler(Teapot)
async def teapot_handler(request: Request, exc: Teapot) -> JSONResponse:
    return JSONResponse({"detail": "short and stout"}, status_code=418)


@app.get("/hello")
async def hello(request: Request) -> dict[str, Any]:
    return {"greeting": request.app.state.greeting}


@app.get("/teapot")
async def teapot() -> dict[str, Any]:
    raise Teapot()


@app.get("/info")  # replaces the built-in /info
async def custom_info() -> dict[str, Any]:
    return {"custom": "info"}


@app.get("/threads/{thread_id}")  # replaces GET only; PATCH and DELETE stay built in
async def custom_thread(thread_id: str) -> dict[str, Any]:
    return {"custom": "thread", "thread_id": thread_id}


@app.get("/ok")  # cannot replace the health check
async def custom_ok() -> dict[str, Any]:
    return {"custom": "ok"}


@app.get("/docs")  # cannot replace the docs
async def custom_docs() -> dict[str, Any]:
    return {"custom": "docs"}
