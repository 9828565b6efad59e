"""`TraceRequests`: one server span per HTTP request when tracing is on (keel.tracing), a child
of the client's W3C `traceparent` when it sends one. Named `METHOD /route/{template}` once the
route is known; attributes after the HTTP semantic conventions. Outermost middleware: a run
created by the request stores this span's context (keel/http/runs.py)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.tracing import Tracing
from keel.tracing.records import current
from keel.tracing.setup import CARRIED

WANTED = tuple(name.encode() for name in CARRIED)  # header names as the ASGI scope has them


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in WANTED}


def _route(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else None


class TraceRequests:
    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        attrs: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        span = self.tracing.request_span(method, attrs, _headers(scope))
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
            await send(message)

        with current(span):  # an exception leaving it is recorded after the naming below
            try:
                await self.app(scope, receive, sending)
            finally:
                route = _route(scope)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
