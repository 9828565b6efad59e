"""A real webhook receiver for the tests: an HTTP server on a free 127.0.0.1 port, in a thread,
that records every request and answers by the URL's path:

- `/ok/...`: 200 at once;
- `/slow/<seconds>/...`: 200 after that many seconds;
- `/flaky/<n>/...`: 500 to the first n requests of each `webhook-id`, then 200;
- `/hang/...`: holds the request until `release()` (or the test's end), then 200;
- `/redirect/...`: 302 to `redirect_to` (a second receiver, to show it is never contacted);
- `/hold-first/...`: holds the first request of the whole receiver until `release()`, then
  answers it 200; every other request gets 200 at once.

`verify` checks a Standard Webhooks signature, written from the published specification
(https://www.standardwebhooks.com, "Verifying webhook authenticity"), independently of Keel's
signing code.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_LIMIT = 110.0  # a held request is answered after this long at the latest


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: float = 300.0) -> bool:
    """Whether the request carries a valid `v1` signature for `secret` (`whsec_` + base64 key):
    the signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the signature HMAC-SHA256
    in base64; the header may list several space-separated `version,signature` pairs; the
    timestamp must be within `tolerance` seconds of now."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not (msg_id and stamp and given):
        return False
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for part in given.split(" "):
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.redirect_to = ""
        self.cond = threading.Condition()
        self.released = threading.Event()
        self.held: Received | None = None  # the request `/hold-first/` holds
        self._failures: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.released.set()

    # ------------------------------------------------------------ recording
    def received(self, prefix: str = "/") -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def wait_for(
        self, check: Callable[[list[Received]], bool], timeout: float = 60.0, prefix: str = "/"
    ) -> list[Received]:
        """Wait until `check` holds for the requests under `prefix`; returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [r for r in self.requests if r.path.startswith(prefix)]
                if check(got):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout}s: {got}")
                self.cond.wait(left)

    async def arrived(self, prefix: str, within: float = 60.0) -> list[Received]:
        """Wait (without blocking the event loop: for a server in this process) until a request
        under `prefix` has been answered; returns those received."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = self.received(prefix)
            if any(r.answered is not None for r in got):
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"receiver: nothing answered under {prefix} in {within}s")

    # ------------------------------------------------------------ answering
    def _answer(self, req: Received) -> tuple[int, dict[str, str]]:
        parts = req.path.strip("/").split("/")
        kind = parts[0]
        if kind == "slow":
            time.sleep(float(parts[1]))
        elif kind == "flaky":
            wid = req.headers.get("webhook-id", "")
            with self.cond:
                seen = self._failures.get(wid, 0)
                self._failures[wid] = seen + 1
            if seen < int(parts[1]):
                return 500, {}
        elif kind == "hang":
            self.released.wait(HOLD_LIMIT)
        elif kind == "redirect":
            return 302, {"Location": self.redirect_to}
        elif kind == "hold-first":
            with self.cond:
                hold = self.held is None
                if hold:
                    self.held = req
                    self.cond.notify_all()
            if hold:
                self.released.wait(HOLD_LIMIT)
        return 200, {}

    def _record(self, req: Received) -> None:
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                req = Received(self.path, headers, body, time.time())
                receiver._record(req)
                code, extra = receiver._answer(req)
                with receiver.cond:
                    req.answered = code
                    receiver.cond.notify_all()
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
