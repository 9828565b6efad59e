"""The v3 thread stream's WebSocket end to end, on a server whose `http.ws_send_queue` is small:
a client that does not read while a run writes far more than the sockets can hold gets, once it
reads, every event once and in order (the server held at most its bound and re-read the rest
from the run's log); `subscription.reconnect` replays on the same connection; a failed read
ends with 1011."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from langgraph_sdk import get_client
from websockets.asyncio.client import ClientConnection

from tests.conftest import database_for
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
BOUND = 64  # http.ws_send_queue of this module's server
PAD = 2000  # characters of padding per custom event
CLIENT_RCVBUF = 64 * 1024  # the slow client's socket receive buffer (fixed: no autotuning)
CHANNELS = ["custom", "lifecycle"]


def _kernel_send_buffer() -> int:
    """The most a TCP socket's send buffer grows to (autotuning's ceiling)."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def _flood_count() -> int:
    """Events enough that what they weigh is four times all the buffers between the server's
    queue and a client that reads nothing (the server's socket at its largest, the client's
    fixed one, a MiB for the libraries'): the server's queue must overflow."""
    buffers = _kernel_send_buffer() + 2 * CLIENT_RCVBUF + 2**20
    return 4 * buffers // PAD + BOUND


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The server's URL and its database's."""
    config = {
        "dependencies": ["."],
        "graphs": {"flood": f"{GRAPHS / 'flood.py'}:graph"},
        "http": {"ws_send_queue": BOUND},
    }
    workdir = tmp_path_factory.mktemp(f"ws-{backend}")
    path = workdir / "langgraph.json"
    path.write_text(json.dumps(config))
    database = database_for(backend, request, workdir)
    srv = KeelServer(path, workdir, database=database)
    srv.start()
    try:
        yield srv.url, database
    finally:
        srv.stop()


@contextlib.contextmanager
def _runs_table_away(database: str) -> Iterator[None]:
    """The server's `runs` table renamed while the block runs (every read of it fails)."""
    statements = ("ALTER TABLE runs RENAME TO runs_away", "ALTER TABLE runs_away RENAME TO runs")
    if database.startswith("sqlite:///"):
        lite = sqlite3.connect(database[len("sqlite:///") :], timeout=60, isolation_level=None)
        lite.execute(statements[0])
        try:
            yield
        finally:
            lite.execute(statements[1])
            lite.close()
        return
    with psycopg.connect(database, autocommit=True) as pg:
        pg.execute(statements[0])
        try:
            yield
        finally:
            pg.execute(statements[1])


@pytest.fixture
async def http(server: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[0], timeout=60.0) as client:
        yield client


def _ws_url(server: tuple[str, str], thread_id: str) -> str:
    return server[0].replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"


def _subscribe(command_id: int, since: int | None = None) -> str:
    params: dict[str, Any] = {"channels": CHANNELS}
    if since is not None:
        params["since"] = since
    return json.dumps({"id": command_id, "method": "subscription.subscribe", "params": params})


def _root_end(frame: dict[str, Any]) -> bool:
    params = frame.get("params") or {}
    data = params.get("data") or {}
    return (
        frame.get("method") == "lifecycle"
        and not params.get("namespace")
        and data.get("event") in ("completed", "failed")
    )


async def _start(http: httpx.AsyncClient, thread_id: str, count: int) -> str:
    command = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "flood", "input": {"count": count, "size": PAD}},
    }
    started = (await http.post(f"/threads/{thread_id}/commands", json=command)).json()
    assert started["type"] == "success", started
    run_id: str = started["result"]["run_id"]
    return run_id


async def _join(http: httpx.AsyncClient, thread_id: str, run_id: str) -> None:
    joined = await http.get(f"/threads/{thread_id}/runs/{run_id}/join")
    assert joined.status_code == 200


async def _everything(http: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    """The thread's events on these channels over SSE, up to the run's end."""
    seen: list[dict[str, Any]] = []
    body = {"channels": CHANNELS}
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if _root_end(seen[-1]):
                    break
    return seen


async def _slow_socket(url: str) -> socket.socket:
    """A connected TCP socket whose receive buffer is fixed and small."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.setblocking(False)
    address = httpx.URL(url)
    assert address.port is not None
    await asyncio.get_running_loop().sock_connect(sock, (address.host, address.port))
    return sock


async def _until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    return frames


async def _until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or not _root_end(frames[-1]):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    return frames


def _events(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames if f.get("type") == "event"]


async def test_a_slow_client_gets_every_event_once_while_the_server_holds_a_bound(
    server: tuple[str, str], http: httpx.AsyncClient
) -> None:
    count = _flood_count()
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    url = _ws_url(server, thread_id)
    sock = await _slow_socket(url)
    async with websockets.connect(url, sock=sock, max_queue=1) as slow:
        await slow.send(_subscribe(1))
        # Nothing is read while the whole run is written: the server's queues must overflow,
        # and the subscription re-reads what it missed from the run's log.
        await _join(http, thread_id, await _start(http, thread_id, count))
        frames = await _until_end(slow)
    assert frames[0] == {"type": "success", "id": 1, "result": frames[0]["result"]}
    received = _events(frames[1:])
    assert len(received) == len(frames) - 1
    everything = _events(await _everything(http, thread_id))
    assert len(everything) == count + 2  # running, the custom events, completed
    assert received == everything  # no loss, nothing twice, in order


async def test_the_sdk_transport_gets_every_event_once_across_overflows(
    server: tuple[str, str],
) -> None:
    """The SDK's websocket transport, reading as fast as it can, of a burst of 30 000 custom
    events past this server's 64-event bound: whether or not the burst outruns the server
    (then the subscription re-reads from the run's log), every event arrives once, in order,
    and the run's output too."""
    client = get_client(url=server[0], api_key=None)
    try:
        async with client.threads.stream(assistant_id="flood", transport="websocket") as thread:
            await thread.run.start(input={"count": 30_000, "size": 10})
            seen: list[dict[str, Any]] = []
            async for event in thread.subscribe(CHANNELS):
                seen.append(dict(event))
                if _root_end(seen[-1]):
                    break
            output = await asyncio.wait_for(thread.output, 60)
    finally:
        await client.aclose()
    assert output["emitted"] == 30_000
    custom = [e["params"]["data"]["i"] for e in seen if e["method"] == "custom"]
    assert custom == list(range(30_000))
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(set(seqs))


async def test_subscription_reconnect_replays_on_the_same_connection(
    server: tuple[str, str], http: httpx.AsyncClient
) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    run_id = await _start(http, thread_id, 5)
    await _join(http, thread_id, run_id)
    async with websockets.connect(_ws_url(server, thread_id)) as ws:
        await ws.send(_subscribe(1))
        first = await _until_end(ws)
        sid = first[0]["result"]["subscription_id"]
        seqs = _events(first[1:])
        assert len(seqs) == 7
        reconnect = {
            "id": 2,
            "method": "subscription.reconnect",
            "params": {"run_id": run_id, "last_event_id": str(seqs[2]), "subscriptions": [sid]},
        }
        await ws.send(json.dumps(reconnect))
        again = await _until_end(ws)
        assert again[0] == {"type": "success", "id": 2, "result": {"restored": True}}
        assert _events(again[1:]) == seqs[3:]
        for params, code in (
            ({"run_id": run_id, "subscriptions": ["nope"]}, "no_such_subscription"),
            ({"run_id": str(uuid.uuid4())}, "no_such_run"),
            ({"run_id": run_id, "last_event_id": "x"}, "invalid_argument"),
            ({}, "invalid_argument"),
        ):
            await ws.send(
                json.dumps({"id": 3, "method": "subscription.reconnect", "params": params})
            )
            answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert (answer["type"], answer["id"], answer["error"]) == ("error", 3, code), params
        # Over POST .../commands no stream belongs to the command: nothing is restored.
        plain = {"id": 4, "method": "subscription.reconnect", "params": {"run_id": run_id}}
        over_http = (await http.post(f"/threads/{thread_id}/commands", json=plain)).json()
        assert over_http == {"type": "success", "id": 4, "result": {"restored": False}}
        await ws.send(b"\xffnot json")  # a binary frame is read as text too
        answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert (answer["type"], answer["error"]) == ("error", "invalid_argument")
        assert answer["id"] is None


async def test_a_failed_read_ends_the_stream_with_1011(
    server: tuple[str, str], http: httpx.AsyncClient
) -> None:
    """The runs table renamed under the server: the subscription's read of the thread's runs
    fails, the client is told why and closed 1011 (the SDK reconnects after it)."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    with _runs_table_away(server[1]):
        async with websockets.connect(_ws_url(server, thread_id)) as ws:
            await ws.send(_subscribe(1))
            frames = await _until_closed(ws)
    assert ws.close_code == 1011 and ws.close_reason == "thread stream failed"
    assert frames[0]["type"] == "success", frames
    assert frames[-1]["type"] == "error" and frames[-1]["error"] == "unknown_error"
    # The cause stays in the server's log; the client is told where to resume.
    assert frames[-1]["message"].startswith("thread stream failed (")
    assert frames[-1]["message"].endswith("reconnect with since=0")


async def test_a_thread_that_is_not_there_is_refused_with_4000_plus_its_status(
    server: tuple[str, str],
) -> None:
    missing = str(uuid.uuid4())
    for thread_id, code, reason in (
        (missing, 4404, f"Thread '{missing}' not found"),
        ("not-a-uuid", 4422, "Invalid thread_id: 'not-a-uuid' is not a valid UUID"),
    ):
        async with websockets.connect(_ws_url(server, thread_id)) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 60)
        assert (ws.close_code, ws.close_reason) == (code, reason)
