"""The network allow-list (`sandbox.network.allow`): the sandbox keeps its own empty network
namespace; a proxy in Keel (HTTP CONNECT and plain-HTTP forwarding) listens on a unix socket
bound read-only into the sandbox, and a small bridge started before the command listens on the
sandbox's 127.0.0.1:3128 and relays to it. `HTTP_PROXY`/`HTTPS_PROXY` point there. The proxy lets
through only listed host:port pairs, resolves names itself and connects only to public addresses
unless the entry is an IP literal. Proxy-unaware clients, raw TCP/UDP and DNS get nothing."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from keel.settings.sandbox import AllowEntry

PROXY_PORT = 3128
SOCKET_DIR = "/run/keel"
HEAD_BYTES = 64 << 10
HEAD_SECONDS = 30.0
CONNECT_SECONDS = 10.0
HOP_HEADERS = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization"}

# Run by the sandbox's python3 as `python3 -c BRIDGE cmd...`: listen first, then a detached
# bridge process relays each connection to the unix socket, and this process becomes `cmd`.
BRIDGE = f"""
import asyncio, os, socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", {PROXY_PORT}))
listener.listen(128)
child = os.fork()
if child:
    os.waitpid(child, 0)
    listener.close()
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        print("keel:", sys.argv[1], exc.strerror, file=sys.stderr)
        os._exit(127)
if os.fork():
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
async def pump(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.write_eof()
    except OSError:
        w.close()
async def relay(r, w):
    try:
        ur, uw = await asyncio.open_unix_connection("{SOCKET_DIR}/proxy.sock")
    except OSError:
        w.close()
        return
    await asyncio.gather(pump(r, uw), pump(ur, w))
    uw.close()
    w.close()
async def main():
    server = await asyncio.start_server(relay, sock=listener)
    await server.serve_forever()
asyncio.run(main())
"""


def bridged(cmd: list[str]) -> list[str]:
    return ["python3", "-c", BRIDGE, *cmd]


def proxy_env() -> list[str]:
    """bwrap arguments setting the proxy variables clients read (after `--clearenv`)."""
    url = f"http://127.0.0.1:{PROXY_PORT}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    return [arg for name in names for arg in ("--setenv", name, url)]


def match(allow: tuple[AllowEntry, ...], host: str, port: int) -> AllowEntry | None:
    """The entry allowing host:port: same port, and the same IP literal, the same name, or a
    name under a `*.suffix` entry."""
    host = host.lower().rstrip(".")
    try:
        literal: str | None = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        literal = None
    for entry in allow:
        if entry.port != port:
            continue
        if entry.literal and entry.host == literal:
            return entry
        if not entry.literal and literal is None:
            suffix = entry.host[1:] if entry.host.startswith("*.") else None
            if entry.host == host or (suffix is not None and host.endswith(suffix)):
                return entry
    return None


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a scoped IPv6 address (fe80::1%eth0): link-local
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_global)


async def addresses(entry: AllowEntry, host: str, port: int) -> list[str]:
    """Where to connect: the literal itself, or the name's public addresses (resolved here,
    once: the connection goes to what was checked)."""
    if entry.literal:
        return [entry.host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [str(info[4][0]) for info in infos]
    return [a for a in dict.fromkeys(found) if _public(a)]


def _reply(status: str, why: str) -> bytes:
    body = f"keel sandbox proxy: {why}\n".encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


Target = tuple[str, int, bytes | None]
Upstream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _target(head: bytes) -> Target | bytes:
    """(host, port, the head to send upstream; None for CONNECT), or the refusal to send."""
    lines = head.split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        return _reply("400 Bad Request", "malformed request line")
    method, target, version = parts
    if method == "CONNECT":
        url = urlsplit(f"//{target}")
        if url.hostname is None or url.port is None:
            return _reply("400 Bad Request", "CONNECT needs host:port")
        return url.hostname, url.port, None
    url = urlsplit(target)
    if url.scheme != "http" or url.hostname is None:
        return _reply("400 Bad Request", "only http:// URLs are forwarded (https: use CONNECT)")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    kept = [line for line in lines[1:] if line and line.split(b":")[0].strip().lower()
            not in HOP_HEADERS]  # fmt: skip
    upstream = [f"{method} {path} {version}".encode(), *kept, b"Connection: close", b"", b""]
    return url.hostname, url.port or 80, b"\r\n".join(upstream)


async def _connect(allow: tuple[AllowEntry, ...], host: str, port: int) -> Upstream | bytes:
    """A connection to host:port when allowed (to an address checked here), or the refusal."""
    entry = match(allow, host, port)
    if entry is None:
        return _reply("403 Forbidden", f"{host}:{port} is not in sandbox.network.allow")
    try:
        found = await addresses(entry, host, port)
    except OSError as exc:
        return _reply("502 Bad Gateway", f"cannot resolve {host}: {exc}")
    if not found:
        return _reply("403 Forbidden", f"{host} resolves only to private addresses")
    for address in found:
        with contextlib.suppress(OSError, TimeoutError):
            opening = asyncio.open_connection(address, port)
            return await asyncio.wait_for(opening, CONNECT_SECONDS)
    return _reply("502 Bad Gateway", f"cannot connect to {host}:{port}")


async def _open(
    allow: tuple[AllowEntry, ...], reader: asyncio.StreamReader
) -> tuple[Upstream, bytes | None] | bytes:
    """The client's request head read and checked: the upstream connection and the head to
    send it (None for CONNECT), or the refusal."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
        target = _target(head)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        return _reply("400 Bad Request", "incomplete or oversized request head")
    if isinstance(target, bytes):
        return target
    host, port, upstream_head = target
    upstream = await _connect(allow, host, port)
    return upstream if isinstance(upstream, bytes) else (upstream, upstream_head)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def serve(
    allow: tuple[AllowEntry, ...], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One client connection: its request checked, then relayed both ways."""
    opened = await _open(allow, reader)
    if isinstance(opened, bytes):
        writer.write(opened)
        return
    (up_reader, up_writer), upstream_head = opened
    try:
        if upstream_head is None:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(upstream_head)
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
    finally:
        up_writer.close()


@contextlib.asynccontextmanager
async def proxy(allow: tuple[AllowEntry, ...], uid: int) -> AsyncIterator[str]:
    """A proxy for one command: yields the directory holding its socket (bound at SOCKET_DIR);
    closed, with its connections, when the block ends."""
    folder = tempfile.mkdtemp(prefix="keel-proxy-")
    os.chmod(folder, 0o711)  # the sandbox's uid traverses it to bind and reach the socket
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await serve(allow, reader, writer)
        except OSError:
            pass  # the client went away
        finally:
            tasks.discard(task)
            writer.close()

    path = os.path.join(folder, "proxy.sock")
    server = await asyncio.start_unix_server(handle, path, limit=HEAD_BYTES)
    try:
        os.chmod(path, 0o600)
        if os.getuid() == 0:
            os.chown(path, uid, uid)
        yield folder
    finally:
        server.close()
        open_ones = list(tasks)
        for task in open_ones:
            task.cancel()
        await asyncio.gather(*open_ones, return_exceptions=True)
        shutil.rmtree(folder, ignore_errors=True)
