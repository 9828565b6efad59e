"""The request body limit (`http.max_body_bytes`, 10 MiB by default): a body over it gets 413
`{"detail"}` without being read whole, and nothing is created.

Raw sockets, so the test controls what is sent: headers that announce more than the limit and
then almost nothing (the answer must come although the rest never does: the server did not wait
for the body), and a chunked body that goes one byte past the limit and never ends (the answer
must come although the body never finished: the server stopped at the limit). Each read is
bounded by a socket timeout; nothing is timed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import database_for
from tests.graphs.auth_fixed_token import TOKEN
from tests.support.reference import ROOT
from tests.support.server import KeelServer

MIB = 2**20
DEFAULT_LIMIT = 10 * MIB
SMALL_LIMIT = 4096
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNK = 64 * 1024


class Raw:
    """One HTTP/1.1 request over a plain socket; the response read until the server closes."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "", parts.port or 80))
        self.sock.settimeout(30.0)
        self.headers = {"Host": parts.netloc, "Content-Type": "application/json", **(headers or {})}

    def send_head(self, path: str, extra: dict[str, str]) -> None:
        fields = {**self.headers, **extra}
        lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes) -> bool:
        """False when the server has already closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def response(self) -> tuple[int, dict[str, str], bytes]:
        data = b""
        while True:
            try:
                piece = self.sock.recv(65536)
            except ConnectionResetError:  # the server closed with our unread bytes pending
                break
            if not piece:
                break
            data += piece
        self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines if ": " in line)
        return int(status_line.split()[1]), headers, body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def padded(size: int) -> bytes:
    """A thread-create body of exactly `size` bytes."""
    empty = len(json.dumps({"metadata": {"pad": ""}}).encode())
    body = json.dumps({"metadata": {"pad": "x" * (size - empty)}}).encode()
    assert len(body) == size
    return body


async def thread_count(url: str, headers: dict[str, str] | None = None) -> int:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0) as http:
        response = await http.post("/threads/count", json={})
        response.raise_for_status()
        count: int = response.json()
        return count


def refused(status: int, headers: dict[str, str], body: bytes, limit: int) -> None:
    assert status == 413, body
    assert json.loads(body) == {"detail": f"Request body too large (limit: {limit} bytes)"}
    assert headers.get("connection") == "close"


# --------------------------------------------------------------- the default limit, no auth
async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    server: KeelServer,
) -> None:
    before = await thread_count(server.url)
    raw = Raw(server.url)
    raw.send_head("/threads", {"Content-Length": str(11 * MIB)})
    raw.send(b'{"metadata": {"pad": "')  # and never the rest
    refused(*raw.response(), DEFAULT_LIMIT)
    assert await thread_count(server.url) == before


async def test_a_chunked_body_is_cut_off_one_byte_past_the_limit(server: KeelServer) -> None:
    before = await thread_count(server.url)
    raw = Raw(server.url)
    raw.send_head("/threads", {"Transfer-Encoding": "chunked"})
    sent = 0
    while sent < DEFAULT_LIMIT + 1 and raw.send(chunk(b"x" * min(CHUNK, DEFAULT_LIMIT + 1 - sent))):
        sent += min(CHUNK, DEFAULT_LIMIT + 1 - sent)
    refused(*raw.response(), DEFAULT_LIMIT)  # no last chunk was ever sent
    assert await thread_count(server.url) == before


# ------------------------------------------------- a configured limit, with a project's auth
@pytest.fixture(scope="module")
def limited(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    """`http.max_body_bytes` = 4096, and a custom auth (one fixed bearer token)."""
    if backend == "reference":
        pytest.skip("Keel's own setting: the reference has no http.max_body_bytes")
    workdir = tmp_path_factory.mktemp(f"limited-{backend}")
    config = workdir / "langgraph.json"
    graphs = {"pipeline": str(ROOT / "examples" / "agents" / "pipeline.py:graph")}
    auth = {"path": str(ROOT / "tests" / "graphs" / "auth_fixed_token.py:auth")}
    section = {"graphs": graphs, "auth": auth, "http": {"max_body_bytes": SMALL_LIMIT}}
    config.write_text(json.dumps(section))
    srv = KeelServer(config, workdir, database=database_for(backend, request, workdir))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def authed(limited: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited.url, headers=AUTH, timeout=30.0) as http:
        yield http


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_at_the_limit_is_accepted_one_byte_more_is_not(
    limited: KeelServer, authed: httpx.AsyncClient, chunked: bool
) -> None:
    before = await thread_count(limited.url, AUTH)

    def content(size: int) -> Any:
        return _chunks(padded(size)) if chunked else padded(size)

    at_limit = await authed.post("/threads", content=content(SMALL_LIMIT))
    assert at_limit.status_code == 200, at_limit.text[:300]
    over = await authed.post("/threads", content=content(SMALL_LIMIT + 1))
    assert over.status_code == 413, over.text[:300]
    assert over.json() == {"detail": f"Request body too large (limit: {SMALL_LIMIT} bytes)"}
    assert await thread_count(limited.url, AUTH) == before + 1


async def test_the_limit_holds_with_auth_before_the_body_is_sent(limited: KeelServer) -> None:
    before = await thread_count(limited.url, AUTH)
    raw = Raw(limited.url, AUTH)
    raw.send_head("/threads", {"Content-Length": str(SMALL_LIMIT + 1)})
    refused(*raw.response(), SMALL_LIMIT)  # not a byte of the body was sent
    assert await thread_count(limited.url, AUTH) == before

