"""Authentication at the HTTP edge with a project's `langgraph_sdk.Auth`
(tests/graphs/auth_owner.py): open meta routes, 401/403 with `{"detail"}`, arguments injected
into `@auth.authenticate` (the body too, left intact for the route), custom routes behind auth,
owner-only threads through the official SDK (hidden = 404, a colliding create = 409), handler
outcomes, the OpenAPI security schemes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.support.configured import serve_config
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
        "graphs": {"config_echo": f"{GRAPHS / 'config_echo.py'}:graph"},
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




async def test_v3_thread_stream_is_the_owners(raw: httpx.AsyncClient, url: str) -> None:
    """The v3 protocol under auth: run.start as a run creation, the event stream as a read of
    the thread (another user's: 404), the WebSocket transport refused (its handshake is not
    authenticated yet)."""
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
    ws_url = url.replace("http://", "ws://") + path
    async with websockets.connect(ws_url, additional_headers=_as("tok-alice")) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
