"""Authentication at the HTTP edge with a project's `langgraph_sdk.Auth`
(tests/graphs/auth_owner.py): open meta routes, 401/403 with `{"detail"}`, arguments injected
into `@auth.authenticate` (the body too, left intact for the route), custom routes behind auth,
owner-only threads through the official SDK (hidden = 404, a colliding create = 409), handler
outcomes, the OpenAPI security schemes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.e2e.helpers import poll
from tests.support.configured import serve_config
from tests.support.gate import Gate
from tests.support.reference import ROOT

GRAPHS = ROOT / "tests" / "graphs"
SCHEMES = {
    "securitySchemes": {"Bearer": {"type": "http", "scheme": "bearer"}},
    "security": [{"Bearer": []}],
}


@pytest.fixture(scope="module")
def url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = {
        "dependencies": ["."],
        "graphs": {
            "config_echo": f"{GRAPHS / 'config_echo.py'}:graph",
            "slow": f"{GRAPHS / 'slow.py'}:graph",
        },
        "auth": {"path": f"{GRAPHS / 'auth_owner.py'}:auth", "openapi": SCHEMES},
        "http": {"app": f"{GRAPHS / 'auth_app.py'}:app", "enable_custom_route_auth": True},
    }
    workdir = tmp_path_factory.mktemp(f"auth-http-{backend}")
    yield from serve_config(backend, request, workdir, config)


@pytest.fixture
async def raw(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def sdk(url: str) -> AsyncIterator[dict[str, LangGraphClient]]:
    """An official SDK client per user."""
    clients = {
        name: get_client(url=url, api_key=None, headers={"Authorization": f"Bearer tok-{name}"})
        for name in ("alice", "bob")
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_meta_routes_stay_open(raw: httpx.AsyncClient) -> None:
    for path in ("/ok", "/info", "/openapi.json", "/docs"):
        assert (await raw.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "Missing token"),
        ({"Authorization": "Bearer nope"}, 401, "Invalid token"),
        ({"Authorization": "Basic tok-alice"}, 401, "Invalid token"),
        ({**_as("tok-alice"), "x-banned": "yes"}, 403, "Banned"),
    ],
)
async def test_authentication_failures_are_json_errors(
    raw: httpx.AsyncClient, headers: dict[str, str], status: int, detail: str
) -> None:
    for method, path in (("POST", "/threads/search"), ("GET", "/whoami"), ("GET", "/nowhere")):
        res = await raw.request(method, path, headers=headers, json={})
        assert (res.status_code, res.json()) == (status, {"detail": detail}), path


async def test_the_handler_may_read_the_body_and_the_route_still_gets_it(
    raw: httpx.AsyncClient,
) -> None:
    refused = await raw.post(
        "/threads", headers=_as("tok-alice"), json={"metadata": {"w": "forbidden-word"}}
    )
    assert (refused.status_code, refused.json()) == (403, {"detail": "Body refused"})
    made = await raw.post("/threads", headers=_as("tok-alice"), json={"metadata": {"w": "fine"}})
    assert made.status_code == 200
    assert made.json()["metadata"] == {"w": "fine", "owner": "alice"}


async def test_custom_routes_see_the_user(raw: httpx.AsyncClient) -> None:
    res = await raw.get("/whoami", headers=_as("tok-bob"))
    assert res.json() == {"identity": "bob", "team": "blue"}


async def test_threads_are_their_owners_only(sdk: dict[str, LangGraphClient]) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    thread = await alice.threads.create(metadata={"topic": "secret"})
    tid = thread["thread_id"]
    assert thread["metadata"] == {"topic": "secret", "owner": "alice"}
    assert (await alice.threads.get(tid))["thread_id"] == tid
    attempts: list[Callable[[], Awaitable[Any]]] = [
        lambda: bob.threads.get(tid),
        lambda: bob.threads.update(tid, metadata={"owner": "bob"}),
        lambda: bob.threads.delete(tid),
        lambda: bob.threads.copy(tid),
        lambda: bob.threads.get_state(tid),
    ]
    for number, attempt in enumerate(attempts):
        with pytest.raises(NotFoundError):
            await attempt()
            pytest.fail(f"attempt {number} succeeded")
    assert tid not in [t["thread_id"] for t in await bob.threads.search(limit=100)]
    assert await bob.threads.count(metadata={"topic": "secret"}) == 0
    assert await alice.threads.count(metadata={"topic": "secret"}) >= 1
    with pytest.raises(ConflictError):
        await bob.threads.create(thread_id=tid)
    copied: Any = await alice.http.post(f"/threads/{tid}/copy", json={})
    assert copied["metadata"]["owner"] == "alice"


async def test_worker_leases_are_filtered_by_the_handlers_search_scope(
    raw: httpx.AsyncClient, gate: Gate, backend: str
) -> None:
    """`GET /keel/workers` lists the worker to everyone, but a run's lease only to those whose
    `threads.search` scope holds its thread; `GET /keel/threads/{id}/runs` hides it as
    `GET /threads/{id}/runs` does."""
    if backend == "reference":
        pytest.skip("Keel-only: GET /keel/workers, GET /keel/threads/{id}/runs")
    tid = (await raw.post("/threads", headers=_as("tok-alice"), json={})).json()["thread_id"]
    body = {"assistant_id": "slow", "input": {"delay": 0}, "config": gate.config}
    made = await raw.post(f"/threads/{tid}/runs", headers=_as("tok-alice"), json=body)
    run_id = made.json()["run_id"]

    async def leases(user: str) -> list[str]:
        got = await raw.get("/keel/workers", headers=_as(user))
        assert got.status_code == 200 and got.json(), got.text
        return [lease["run_id"] for w in got.json() for lease in w["leases"]]

    try:
        await poll(lambda: leases("tok-alice"), lambda held: run_id in held)
        assert run_id not in await leases("tok-bob")
        hidden = await raw.get(f"/keel/threads/{tid}/runs", headers=_as("tok-bob"))
        assert hidden.status_code == 404 and hidden.json()["detail"], hidden.text
        mine = await raw.get(f"/keel/threads/{tid}/runs", headers=_as("tok-alice"))
        assert [(r["run_id"], r["attempt"]) for r in mine.json()] == [(run_id, 1)]
    finally:
        gate.open()
    assert (await raw.get("/keel/workers")).status_code == 401


async def test_a_handler_returning_false_is_403(raw: httpx.AsyncClient) -> None:
    made = await raw.post("/threads", headers=_as("tok-reader"), json={})
    res = await raw.delete(f"/threads/{made.json()['thread_id']}", headers=_as("tok-reader"))
    assert (res.status_code, res.json()) == (403, {"detail": "Forbidden"})


async def test_a_handler_returning_something_else_is_500(raw: httpx.AsyncClient) -> None:
    res = await raw.post("/assistants/search", headers=_as("tok-odd"), json={})
    assert res.status_code == 500
    assert "invalid result" in res.json()["detail"].lower()


async def test_the_openapi_schema_names_the_security_schemes(raw: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await raw.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == SCHEMES["securitySchemes"]
    assert schema["security"] == SCHEMES["security"]


async def test_v3_thread_stream_is_the_owners(raw: httpx.AsyncClient) -> None:
    """The v3 protocol under auth: run.start as a run creation, the event stream as a read of
    the thread (another user's: 404)."""
    tid = str(uuid.uuid4())
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "config_echo"}}
    assert (await raw.post(f"/threads/{tid}/commands", json=start)).status_code == 401
    started = await raw.post(f"/threads/{tid}/commands", json=start, headers=_as("tok-alice"))
    assert started.json()["type"] == "success"
    body = {"channels": ["lifecycle"]}
    path = f"/threads/{tid}/stream/events"
    other = await raw.post(path, json=body, headers=_as("tok-bob"))
    assert other.status_code == 404
    async with raw.stream("POST", path, json=body, headers=_as("tok-alice")) as own:
        assert own.status_code == 200


def _root_end(event: dict[str, Any]) -> bool:
    params = event.get("params") or {}
    return (
        event.get("method") == "lifecycle"
        and not params.get("namespace")
        and params.get("data", {}).get("event") in ("completed", "failed")
    )


async def test_v3_websocket_is_authenticated_and_the_owners(
    sdk: dict[str, LangGraphClient], url: str
) -> None:
    """The WebSocket transport under auth, through the SDK's own websocket transport: the
    handshake is authenticated as a request (refused: the HTTP 401 and its `{"detail"}` instead
    of the upgrade), the thread must be the user's (another user's: accepted, then closed 4404,
    the code the SDK does not retry)."""
    alice = sdk["alice"]
    headers = _as("tok-alice")
    async with alice.threads.stream(
        assistant_id="config_echo", transport="websocket", headers=headers
    ) as thread:
        await thread.run.start(input={})
        events: list[dict[str, Any]] = []
        async for event in thread.subscribe(["lifecycle", "values"]):
            events.append(dict(event))
            if _root_end(events[-1]):
                break
        output = await asyncio.wait_for(thread.output, 30)
    assert [e["params"]["data"]["event"] for e in events if e["method"] == "lifecycle"] == [
        "running",
        "completed",
    ]
    assert output["seen"]["langgraph_auth_user_id"] == "alice"
    ws_url = url.replace("http://", "ws://") + f"/threads/{thread.thread_id}/stream/events"
    subscribe = json.dumps(
        {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}
    )
    async with websockets.connect(ws_url, additional_headers=headers) as ws:  # the owner, raw
        await ws.send(subscribe)
        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert answer["type"] == "success" and answer["id"] == 1
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert first["params"]["data"]["event"] == "running"
    async with websockets.connect(ws_url, additional_headers=_as("tok-bob")) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert closed.value.rcvd.reason == f"Thread '{thread.thread_id}' not found"
    # Through the SDK (4404 is a code it does not retry): bob's stream of it fails, not found.
    async with sdk["bob"].threads.stream(
        thread_id=thread.thread_id,
        assistant_id="config_echo",
        transport="websocket",
        headers=_as("tok-bob"),
    ) as theirs:
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(theirs.output, 30)
    for refused_headers, status, detail in (
        ({}, 401, "Missing token"),
        (_as("nope"), 401, "Invalid token"),
        ({**headers, "x-banned": "yes"}, 403, "Banned"),
    ):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(ws_url, additional_headers=refused_headers):
                pass
        response = refused.value.response
        assert (response.status_code, json.loads(response.body)) == (status, {"detail": detail})
