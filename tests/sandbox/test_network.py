"""The network allow-list: listed host:port pairs reachable through Keel's proxy by proxy-aware
clients inside the sandbox; anything else refused (403) with nothing reaching the host; raw
sockets and DNS still fail. Real bwrap, a real HTTP server on the host's loopback."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import ConfigError
from keel.sandbox import Sandbox, for_thread, network
from keel.settings.sandbox import SandboxLimits, SandboxSettings, allow_entry, sandbox_settings
from tests.support.sandbox import traversable_dir

LIMITS = SandboxLimits(wall_seconds=20.0, processes=64)


class Recording(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello " + self.path.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on the host's 127.0.0.1: its port and the paths it was asked for."""
    seen: list[str] = []
    handler = type("Handler", (Recording,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def other() -> Iterator[socket.socket]:
    """A listener on the host's 127.0.0.1 that is not in the allow-list."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def base() -> Iterator[Path]:
    with traversable_dir("keel-network-") as path:
        yield path


def sandbox(base: Path, *allow: str) -> Sandbox:
    entries = tuple(allow_entry(a) for a in allow)
    return for_thread("net", SandboxSettings(root=base / "ws", limits=LIMITS, allow=entries))


def probe(sb: Sandbox, body: str) -> dict[str, str]:
    """`body` run by python3 inside, each `out[name] = ...` collected as JSON."""
    code = "import json, socket, urllib.request, http.client\nout = {}\n"
    code += f"{body}\nprint(json.dumps(out))\n"
    sb.write("probe.py", code)
    result = asyncio.run(sb.run("python3 probe.py"))
    assert result.exit_code == 0, result
    got: dict[str, str] = json.loads(result.stdout)
    return got


def attempt(name: str, expr: str) -> str:
    return (
        f"try:\n    out[{name!r}] = repr({expr})\n"
        f"except Exception as exc:\n    out[{name!r}] = type(exc).__name__ + ': ' + str(exc)\n"
    )


def test_a_listed_host_is_reached_through_the_proxy(
    base: Path, server: tuple[int, list[str]]
) -> None:
    port, seen = server
    sb = sandbox(base, f"127.0.0.1:{port}")
    tunnel = (
        f"c = http.client.HTTPConnection('127.0.0.1', {network.PROXY_PORT}, timeout=5)\n"
        f"c.set_tunnel('127.0.0.1', {port})\nc.request('GET', '/tunnel')\n"
        "out['connect'] = repr(c.getresponse().read())\n"
    )
    url = f"http://127.0.0.1:{port}/plain?q=1"
    forward = attempt("forward", f"urllib.request.urlopen({url!r}, timeout=5).read()")
    got = probe(sb, forward + tunnel)
    assert got == {"forward": "b'hello /plain?q=1'", "connect": "b'hello /tunnel'"}
    assert seen == ["/plain?q=1", "/tunnel"]


def test_an_unlisted_port_is_refused_and_reaches_nothing(
    base: Path, server: tuple[int, list[str]], other: socket.socket
) -> None:
    port, seen = server
    sb = sandbox(base, f"127.0.0.1:{port}")
    unlisted = other.getsockname()[1]
    tunnel = (
        f"c = http.client.HTTPConnection('127.0.0.1', {network.PROXY_PORT}, timeout=5)\n"
        f"c.set_tunnel('127.0.0.1', {unlisted})\n"
    )
    url = f"http://127.0.0.1:{unlisted}/"
    got = probe(
        sb,
        attempt("forward", f"urllib.request.urlopen({url!r}, timeout=5).read()")
        + tunnel
        + attempt("connect", "c.request('GET', '/')"),
    )
    assert got["forward"] == "HTTPError: HTTP Error 403: Forbidden", got
    assert got["connect"].startswith("OSError: Tunnel connection failed: 403"), got
    with pytest.raises(BlockingIOError):
        other.accept()  # the unlisted listener received nothing
    assert seen == []


def test_raw_sockets_and_dns_still_fail(base: Path, server: tuple[int, list[str]]) -> None:
    port, seen = server
    sb = sandbox(base, f"127.0.0.1:{port}", "example.com:80")
    got = probe(
        sb,
        attempt("tcp", f"socket.create_connection(('127.0.0.1', {port}), timeout=5)")
        + attempt("dns", "socket.getaddrinfo('example.com', 80)")
        + attempt("udp", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', "
                  "('8.8.8.8', 53))"),
    )  # fmt: skip
    assert got["tcp"].startswith("ConnectionRefusedError"), got  # the sandbox's own loopback
    assert got["dns"].startswith("gaierror"), got
    assert got["udp"] == "OSError: [Errno 101] Network is unreachable", got
    assert seen == []


async def ask(folder: str, request: bytes) -> bytes:
    """One request straight to a proxy's socket (as the bridge would relay it)."""
    reader, writer = await asyncio.open_unix_connection(os.path.join(folder, "proxy.sock"))
    writer.write(request)
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


def test_the_proxy_refuses_names_resolving_to_private_addresses_and_bad_requests(
    server: tuple[int, list[str]],
) -> None:
    port, seen = server

    async def scenario() -> list[bytes]:
        allow = (allow_entry(f"localhost:{port}"),)
        async with network.proxy(allow, os.getuid()) as folder:
            return [
                await ask(folder, f"GET http://localhost:{port}/ HTTP/1.1\r\n\r\n".encode()),
                await ask(folder, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()),
                await ask(folder, b"GET /relative HTTP/1.1\r\n\r\n"),
                await ask(folder, b"nonsense\r\n\r\n"),
            ]

    replies = asyncio.run(scenario())
    assert [r.split(b"\r\n")[0] for r in replies] == [
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 400 Bad Request",
    ]
    assert b"private addresses" in replies[0]
    assert seen == []


def test_entries_match_exact_hosts_and_suffixes_on_their_port() -> None:
    allow = tuple(allow_entry(a) for a in ("PyPI.org:443", "*.pythonhosted.org:443", "[::1]:80"))
    assert network.match(allow, "pypi.org", 443) == allow[0]
    assert network.match(allow, "pypi.org.", 443) == allow[0]
    assert network.match(allow, "pypi.org", 80) is None
    assert network.match(allow, "files.pythonhosted.org", 443) == allow[1]
    assert network.match(allow, "pythonhosted.org", 443) is None
    assert network.match(allow, "evilpythonhosted.org", 443) is None
    assert network.match(allow, "::1", 80) == allow[2]
    assert network.match(allow, "[::1]", 80) == allow[2]
    assert network.match(allow, "127.0.0.1", 80) is None


def test_the_network_setting_is_validated(tmp_path: Path) -> None:
    settings = sandbox_settings({"network": {"allow": ["a.example:1", "10.0.0.1:8080"]}}, tmp_path)
    assert settings is not None and settings.allow is not None
    assert [(e.host, e.port, e.literal) for e in settings.allow] == [
        ("a.example", 1, False),
        ("10.0.0.1", 8080, True),
    ]
    off = sandbox_settings({}, tmp_path)
    assert off is not None and off.allow is None
    bad_ones: list[object] = [
        {"allow": ["pypi.org"]}, {"allow": ["pypi.org:0"]}, {"allow": "pypi.org:443"},
        {"allow": ["bad host:1"]}, {"allow": ["[nope]:1"]}, {"deny": []}, ["x"],
    ]  # fmt: skip
    for bad in bad_ones:
        with pytest.raises(ConfigError):
            sandbox_settings({"network": bad}, tmp_path)
