"""A thread-stream client that reads nothing while a run publishes megabytes of events: the
server holds at most `KEEL_STREAM_QUEUE` live events for it (16 here) and nothing is lost.

The client reads only after the run has ended. By then the run's ~16 MB of events are far
more than the loopback socket buffers can hold, so the server's stream is blocked on the socket
and its bounded live queue overflows (by construction, not by timing). A v3 stream then re-reads
the missed events from the run's log and carries on: the client gets every event once, in seq
order. `GET /threads/{id}/stream` ends instead, and the client resumes it with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_CONFIG, database_for
from tests.support.server import KeelServer

EVENTS = 2_000
PAD = 8_000  # bytes per event: ~16 MB in all
FLOOD = {"count": EVENTS, "size": PAD}


@pytest.fixture
def server(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeelServer]:
    srv = KeelServer(
        GRAPHS_CONFIG,
        tmp_path / "keel",
        database=database_for(backend, request, tmp_path),
        env={"KEEL_STREAM_QUEUE": "16"},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def http(server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as raw:
        yield raw


async def _data_frames(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any]]:
    """(id, parsed data) of each SSE frame with data."""
    event_id: str | None = None
    data: str | None = None
    async for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data = line[5:]
        elif not line and data is not None:
            yield event_id, json.loads(data)
            event_id = data = None


async def _start_v3(http: httpx.AsyncClient, thread_id: str) -> str:
    params = {"assistant_id": "flood", "input": FLOOD}
    command = {"id": 1, "method": "run.start", "params": params}
    r = await http.post(f"/threads/{thread_id}/commands", json=command)
    assert r.status_code == 200 and r.json()["type"] == "success", r.text
    run_id: str = r.json()["result"]["run_id"]
    return run_id


async def test_v3_stream_of_a_slow_client_loses_nothing(
    server: KeelServer, http: httpx.AsyncClient
) -> None:
    sdk = get_client(url=server.url, api_key=None)
    thread_id = (await sdk.threads.create())["thread_id"]
    body = {"channels": ["custom", "lifecycle"]}
    path = f"/threads/{thread_id}/stream/events"
    async with http.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        run_id = await _start_v3(http, thread_id)
        await asyncio.wait_for(sdk.runs.join(thread_id, run_id), 120)  # nothing read yet
        seqs: list[int] = []
        written: list[int] = []
        async for _, event in _data_frames(r.aiter_lines()):
            seqs.append(event["seq"])
            if event["method"] == "custom":
                written.append(event["params"]["data"]["i"])
            elif not event["params"]["namespace"] and event["params"]["data"]["event"] in (
                "completed",
                "failed",
            ):
                assert event["params"]["data"]["event"] == "completed"
                break
    await sdk.aclose()
    assert written == list(range(EVENTS))
    assert seqs == sorted(set(seqs))
    # The same events, the same seqs, as a client that read them all from the log afterwards.
    async with http.stream("POST", path, json=body) as again:
        replayed = await asyncio.wait_for(_seqs(again.aiter_lines(), len(seqs)), 120)
    assert replayed == seqs


async def _seqs(lines: AsyncIterator[str], n: int) -> list[int]:
    found: list[int] = []
    async for _, event in _data_frames(lines):
        found.append(event["seq"])
        if len(found) == n:
            break
    return found


async def _flood_until_last(
    lines: AsyncIterator[str], written: list[int]
) -> str | None:
    """Append the `i` of each flood event until the last one (or the response's end); the id
    of the last frame read."""
    last: str | None = None
    async for event_id, data in _data_frames(lines):
        last = event_id
        if isinstance(data, dict) and "i" in data:
            written.append(data["i"])
            if data["i"] == EVENTS - 1:
                break
    return last


async def test_thread_stream_of_a_slow_client_ends_and_resumes(
    server: KeelServer, http: httpx.AsyncClient
) -> None:
    sdk = get_client(url=server.url, api_key=None)
    thread_id = (await sdk.threads.create())["thread_id"]
    path = f"/threads/{thread_id}/stream"
    written: list[int] = []
    async with http.stream("GET", path) as r:
        assert r.status_code == 200
        run = await sdk.runs.create(thread_id, "flood", input=FLOOD, stream_mode=["custom"])
        await asyncio.wait_for(sdk.runs.join(thread_id, run["run_id"]), 120)
        last = await _flood_until_last(r.aiter_lines(), written)
    if written[-1:] != [EVENTS - 1]:  # the response ended: resume where it stopped
        assert last is not None
        async with http.stream("GET", path, headers={"Last-Event-ID": last}) as resumed:
            await asyncio.wait_for(_flood_until_last(resumed.aiter_lines(), written), 120)
    await sdk.aclose()
    assert written == list(range(EVENTS))
