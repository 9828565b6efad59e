"""The clients of test_pg_chaos: each creates one run of the recording graph through either API
process, retrying across kills without ever creating it twice; every 8th creates it with
POST .../runs/stream and follows it to its end, reconnecting with Last-Event-ID."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

CREATE_DEADLINE = 120.0  # a run not accepted this long after its creation started fails the test
DRAIN_TIMEOUT = 120.0  # after the chaos, every run must end within this
BODY = {
    "assistant_id": "recording",
    "input": {"steps": []},
    "durability": "sync",
    "multitask_strategy": "reject",
}
FOLLOW_MODES = ["values", "updates"]
TERMINAL = ("success", "error", "timeout", "interrupted")


class Retry(Exception):
    """A response worth retrying elsewhere (the server or its database is restarting)."""


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    event: str
    data: str


@dataclass
class Plan:
    index: int
    thread_id: str
    api: int  # the API process its creation starts on
    followed: bool
    run_id: str | None = None
    requests: int = 0  # create (or create-and-stream) requests sent
    received: list[SseEvent] = field(default_factory=list)
    connections: int = 0  # stream responses opened
    drops: int = 0  # open streams cut off
    refused: int = 0  # requests that failed before a stream was open
    early_ends: int = 0  # streams that ended cleanly before the run was terminal
    error: str | None = None


def check(response: httpx.Response) -> None:
    if response.status_code >= 500:
        raise Retry(f"{response.status_code}: {response.text[:200]}")
    response.raise_for_status()


async def find_run(http: httpx.AsyncClient, plan: Plan) -> str | None:
    """Create the plan's thread if needed; the id of its run, if one was created already.

    A create cut off by a kill may or may not have been committed; each plan owns its thread,
    so any run on it is the plan's own."""
    thread = {"thread_id": plan.thread_id, "if_exists": "do_nothing"}
    check(await http.post("/threads", json=thread))
    response = await http.get(f"/threads/{plan.thread_id}/runs")
    check(response)
    runs = response.json()
    return str(runs[0]["run_id"]) if runs else None


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    event, data, event_id = "message", "", None
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent(event_id, event, data)
            event, data, event_id = "message", "", None
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line.startswith("id: "):
            event_id = int(line[len("id: ") :])


async def create(plan: Plan, clients: list[httpx.AsyncClient]) -> None:
    """Create the plan's run once, retrying across kills on either API process."""
    idx, deadline = plan.api, time.monotonic() + CREATE_DEADLINE
    while True:
        http = clients[idx]
        try:
            plan.run_id = await find_run(http, plan)
            if plan.run_id is not None:
                return
            plan.requests += 1
            response = await http.post(f"/threads/{plan.thread_id}/runs", json=BODY)
            if response.status_code == 409:  # an earlier, cut-off create got through
                continue
            check(response)
            plan.run_id = str(response.json()["run_id"])
            return
        except (httpx.TransportError, Retry) as exc:
            if time.monotonic() > deadline:
                plan.error = f"not accepted in {CREATE_DEADLINE}s: {exc!r}"
                return
            idx = 1 - idx
            await asyncio.sleep(0.05)


def stream_request(http: httpx.AsyncClient, plan: Plan, last: int | None) -> httpx.Request:
    """Create-and-stream the plan's run, or rejoin it after the last event received."""
    if plan.run_id is None:
        body = {**BODY, "stream_mode": FOLLOW_MODES, "stream_resumable": True}
        return http.build_request("POST", f"/threads/{plan.thread_id}/runs/stream", json=body)
    path = f"/threads/{plan.thread_id}/runs/{plan.run_id}/stream"
    headers = {"Last-Event-ID": str(last if last is not None else 0)}
    return http.build_request("GET", path, headers=headers)


async def follow(plan: Plan, clients: list[httpx.AsyncClient], open_on: list[set[int]]) -> None:
    """Create the run with POST .../runs/stream and follow it to its end, reconnecting with
    Last-Event-ID (to the other API process) whenever the connection drops. While a stream is
    open on API process i and has received an event, the plan is in `open_on[i]`."""
    idx, deadline = plan.api, time.monotonic() + CREATE_DEADLINE + DRAIN_TIMEOUT + 60
    last: int | None = None
    pause = 0.02
    while time.monotonic() < deadline:
        http = clients[idx]
        streaming = False
        try:
            if plan.run_id is None:
                plan.run_id = await find_run(http, plan)
            if plan.run_id is None:
                plan.requests += 1
            response = await http.send(stream_request(http, plan, last), stream=True)
            try:
                if response.status_code == 409 and plan.run_id is None:
                    continue  # an earlier, cut-off create got through: find it
                if response.status_code >= 400:
                    await response.aread()  # for check's message
                check(response)
                plan.connections += 1
                streaming = True
                async for ev in sse_events(response):
                    if plan.run_id is None and ev.event == "metadata":
                        plan.run_id = str(json.loads(ev.data)["run_id"])
                    plan.received.append(ev)
                    last = ev.id
                    open_on[idx].add(plan.index)
            finally:
                open_on[idx].discard(plan.index)
                await response.aclose()
            if plan.run_id is not None:
                run = await http.get(f"/threads/{plan.thread_id}/runs/{plan.run_id}")
                check(run)
                if run.json()["status"] in TERMINAL:
                    return
            plan.early_ends += 1  # ended cleanly, but the run goes on: follow it again
        except (httpx.TransportError, Retry):
            if streaming:
                plan.drops += 1
                pause = 0.02
            else:  # both API processes may be down: back off a little
                plan.refused += 1
                pause = min(pause * 2, 0.25)
            idx = 1 - idx
            await asyncio.sleep(pause)
    plan.error = "stream not followed to the end before the deadline"


async def replay(http: httpx.AsyncClient, plan: Plan) -> list[SseEvent]:
    path = f"/threads/{plan.thread_id}/runs/{plan.run_id}/stream"
    async with http.stream("GET", path, headers={"Last-Event-ID": "0"}) as response:
        check(response)
        return [ev async for ev in sse_events(response)]


def stream_problems(received: list[SseEvent], log: list[SseEvent]) -> list[str]:
    """How a stream differs from the run's event log (ids, names and payloads)."""
    if received == log:
        return []
    problems = []
    ids = [ev.id for ev in received]
    dup = sorted({i for i in ids if i is not None and ids.count(i) > 1})
    if dup:
        problems.append(f"ids received more than once: {dup}")
    if any(a is None or b is None or b <= a for a, b in itertools.pairwise(ids)):
        problems.append(f"ids not strictly increasing: {ids}")
    logged = {ev.id: ev for ev in log}
    missing = sorted(set(logged) - set(ids), key=lambda i: i or 0)
    if missing:
        problems.append(f"missing {len(missing)} logged events: ids {missing}")
    extra = [ev.id for ev in received if ev.id not in logged]
    if extra:
        problems.append(f"events that are not in the log: ids {extra}")
    changed = [ev.id for ev in received if ev.id in logged and logged[ev.id] != ev]
    if changed:
        problems.append(f"events differing from the log: ids {changed}")
    return problems or ["differs from the log"]
