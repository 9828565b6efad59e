"""Helpers shared by the end-to-end tests: polling with a deadline, stream collection, SSE."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from langgraph_sdk.schema import StreamPart

T = TypeVar("T")
# The SDK's return annotations are looser than its JSON (unions of list and dict, optional
# TypedDicts, `threads.copy` annotated as returning None), and the tests index real JSON; so
# test functions see the clients as `Client` / `SyncClient`. Fixtures build the real types.
Client = Any
SyncClient = Any
NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
TERMINAL = {"success", "error", "timeout", "interrupted"}


# The keys of the reference's Run object.
RUN_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
}


def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, graph_id))


async def poll(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    within: float = 60.0,
    interval: float = 0.05,
) -> T:
    """Call `fetch` until `done(result)`; fail with the last result after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {result!r}")
        await asyncio.sleep(interval)


def poll_sync(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        time.sleep(0.05)


async def run_status(client: Client, thread_id: str, run_id: str, *wanted: str) -> Any:
    """Wait until the run has one of the `wanted` statuses (default: any terminal one)."""
    targets = set(wanted) or TERMINAL
    return await poll(lambda: client.runs.get(thread_id, run_id), lambda r: r["status"] in targets)


async def collect(stream: AsyncIterator[StreamPart]) -> list[StreamPart]:
    return [part async for part in stream]


def events_named(parts: list[StreamPart], name: str) -> list[Any]:
    return [p.data for p in parts if p.event == name]


def assert_ids_increase(parts: list[StreamPart]) -> None:
    """Every event carries an id, and ids strictly increase within one run's stream."""
    ids = [p.id for p in parts]
    assert all(i is not None and i != "" for i in ids), ids
    numeric = [int(str(i).rsplit("-", 1)[-1].rsplit(".", 1)[-1]) for i in ids]
    assert numeric == sorted(numeric) and len(set(numeric)) == len(numeric), ids


@dataclass
class RawEvent:
    event: str
    data: Any
    id: str | None


def parse_sse(text: str) -> list[RawEvent]:
    """Parse an SSE body exactly as sent (CRLF or LF framing), skipping comments."""
    out: list[RawEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key, []).append(value[1:] if value.startswith(" ") else value)
        if "event" in fields or "data" in fields:
            assert len(fields.get("data", [])) == 1, f"one data line per event: {block!r}"
            out.append(
                RawEvent(
                    fields.get("event", ["message"])[0],
                    orjson.loads(fields["data"][0]),
                    fields.get("id", [None])[0],
                )
            )
    return out
