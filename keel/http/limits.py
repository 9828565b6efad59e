"""The request body limit (`http.max_body_bytes`, `KEEL_MAX_BODY_BYTES`; 10 MiB by default).

A pure ASGI middleware. A request whose `Content-Length` is over the limit is answered 413 at
once, before anything reads its body; a chunked body (`Transfer-Encoding`) is counted as the
application receives it, and the first chunk past the limit ends the request with 413. Either way
the response carries `Connection: close`, so the server stops reading the rest of the body
instead of draining it to reuse the connection. Requests with neither header have no body
(HTTP/1.1 framing) and pass untouched: the limit costs one scan of the headers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.errors import PayloadTooLarge
from keel.serde import dumps

CLOSE = (b"connection", b"close")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.max_bytes and not chunked:
            await refuse(send, too_large(self.max_bytes))
            return
        if not chunked:  # the server never delivers more than the declared length
            await self.app(scope, receive, send)
            return
        await _Counted(self.max_bytes, receive, send).run(self.app, scope)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (limit: {limit} bytes)")


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's `Content-Length` (None when absent or unreadable) and whether its body is
    sent with a `Transfer-Encoding` (chunked)."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class _Counted:
    """One chunked request: counts the body as it is received; past the limit, every further
    receive raises PayloadTooLarge (the route's error handler answers 413) and the response
    closes the connection."""

    def __init__(self, limit: int, receive: Receive, send: Send) -> None:
        self.limit = limit
        self._receive = receive
        self._send = send
        self.seen = 0
        self.over = False
        self.started = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except PayloadTooLarge as exc:
            if self.started:  # a streaming response that read the body late: nothing to add
                raise
            await refuse(self._send, exc)

    async def receive(self) -> Message:
        if self.over:
            raise too_large(self.limit)
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.over = True
                raise too_large(self.limit)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self.over:
                message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
        await self._send(message)


async def refuse(send: Send, exc: PayloadTooLarge) -> None:
    body = dumps({"detail": exc.detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        CLOSE,
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
