"""The `http` section of langgraph.json: a project's own app merged into the server (`app`), the
whole server under a prefix (`mount_prefix`), surfaces turned off (`disable_*`), and request
headers copied into runs (`configurable_headers`). Three servers, each with its own config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.configured import serve_config
from tests.support.reference import ROOT

GRAPHS = ROOT / "tests" / "graphs"
CUSTOM_APP = f"{GRAPHS / 'custom_app.py'}:app"
HEADER_RULES = {
    "includes": ["x-user-*", "user-agent", "authorization", "x-api-key"],
    "excludes": ["x-user-secret"],
}
PREFIXED = {
    "app": CUSTOM_APP,
    "mount_prefix": "/api/",
    **{f"disable_{s}": True for s in ("assistants", "store", "webhooks", "mcp", "a2a", "ui")},
    "middleware_order": "auth_first",
    "enable_custom_route_auth": True,
}
BARE = {"disable_meta": True, "disable_threads": True, "disable_runs": True}
MISSING = "00000000-0000-0000-0000-000000000001"


def _serve(
    backend: str, request: pytest.FixtureRequest, workdir: Path, http: dict[str, Any]
) -> Iterator[str]:
    """A server whose config has the `config_echo` graph and this `http` section; its URL."""
    graphs = {"config_echo": f"{GRAPHS / 'config_echo.py'}:graph"}
    config = {"dependencies": ["."], "graphs": graphs, "http": http}
    yield from serve_config(backend, request, workdir, config)


@pytest.fixture(scope="module")
def custom_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    http = {"app": CUSTOM_APP, "configurable_headers": HEADER_RULES}
    yield from _serve(backend, request, tmp_path_factory.mktemp(f"custom-{backend}"), http)


@pytest.fixture(scope="module")
def prefixed_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from _serve(backend, request, tmp_path_factory.mktemp(f"prefix-{backend}"), PREFIXED)


@pytest.fixture(scope="module")
def bare_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from _serve(backend, request, tmp_path_factory.mktemp(f"bare-{backend}"), BARE)


@pytest.fixture
async def custom(custom_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=custom_url, timeout=30.0) as raw:
        yield raw


@pytest.fixture
async def prefixed(prefixed_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prefixed_url, timeout=30.0) as raw:
        yield raw


@pytest.fixture
async def bare(bare_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bare_url, timeout=30.0) as raw:
        yield raw


# ----------------------------------------------------------------------------- http.app
async def test_custom_routes_come_before_the_built_in_ones(custom: httpx.AsyncClient) -> None:
    assert (await custom.get("/info")).json() == {"custom": "info"}
    got = await custom.get(f"/threads/{MISSING}")
    assert got.json() == {"custom": "thread", "thread_id": MISSING}
    # Only GET is replaced: the other methods on the path are still the built-in ones.
    assert (await custom.delete(f"/threads/{MISSING}")).status_code == 404
    thread = (await custom.post("/threads", json={})).json()
    assert thread["thread_id"]


async def test_ok_and_docs_cannot_be_replaced(custom: httpx.AsyncClient) -> None:
    ok = (await custom.get("/ok")).json()
    assert ok["ok"] is True and "custom" not in ok
    docs = await custom.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")


async def test_custom_middleware_wraps_the_whole_server(custom: httpx.AsyncClient) -> None:
    searched = await custom.post("/threads/search", json={})
    assert searched.status_code == 200 and searched.headers["x-custom-app"] == "yes"
    assert (await custom.get("/ok")).headers["x-custom-app"] == "yes"
    missing = await custom.get("/no/such/route")
    assert missing.status_code == 404 and missing.headers["x-custom-app"] == "yes"


async def test_custom_lifespan_sets_state_the_routes_read(custom: httpx.AsyncClient) -> None:
    assert (await custom.get("/hello")).json() == {"greeting": "hello from the lifespan"}


async def test_custom_exception_handlers_leave_built_in_errors_alone(
    custom: httpx.AsyncClient,
) -> None:
    teapot = await custom.get("/teapot")
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "short and stout"})
    bad = await custom.post("/threads/search", json={"limit": "many"})
    assert bad.status_code == 422 and bad.json()["detail"]


async def test_openapi_lists_custom_routes(custom: httpx.AsyncClient) -> None:
    spec = (await custom.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "get" in paths["/hello"] and "post" in paths["/threads/search"]
    thread = paths["/threads/{thread_id}"]
    assert thread["get"]["operationId"].startswith("custom_thread")  # the custom app's
    assert {"get", "patch", "delete"} <= set(thread)


# ----------------------------------------------------------- http.configurable_headers
@pytest.mark.parametrize("stateless", [True, False])
async def test_configured_headers_reach_the_run_config(
    custom: httpx.AsyncClient, stateless: bool
) -> None:
    headers = {
        "X-User-Id": "u-42",  # header names arrive lower-cased
        "x-user-secret": "s",  # excluded
        "x-other": "o",  # not included
        "Authorization": "Bearer t",  # never copied, even when included
        "x-api-key": "k",  # never copied, even when included
        "User-Agent": "tests/1",
    }
    body = {
        "assistant_id": "config_echo",
        "input": {},
        "config": {"configurable": {"x-user-id": "from-body", "kept": "yes"}},
    }
    path = "/runs/wait"
    if not stateless:
        path = f"/threads/{(await custom.post('/threads', json={})).json()['thread_id']}{path}"
    res = await custom.post(path, json=body, headers=headers)
    assert res.status_code == 200, res.text
    seen = res.json()["seen"]
    assert seen["x-user-id"] == "u-42"  # the header wins over the body's value
    assert seen["user-agent"] == "tests/1" and seen["kept"] == "yes"
    for absent in ("x-user-secret", "x-other", "authorization", "x-api-key", "X-User-Id"):
        assert absent not in seen, absent


# ------------------------------------------------------------ mount_prefix and disable_*
async def test_mount_prefix_serves_everything_under_it(prefixed: httpx.AsyncClient) -> None:
    assert (await prefixed.post("/api/threads/search", json={})).status_code == 200
    assert (await prefixed.get("/api/hello")).json() == {"greeting": "hello from the lifespan"}
    assert (await prefixed.get("/api/info")).json() == {"custom": "info"}
    assert (await prefixed.get("/api/ok")).json()["ok"] is True
    for root in ("/ok", "/"):  # the health check also at the root, for load balancers
        assert (await prefixed.get(root)).json()["ok"] is True
    assert (await prefixed.post("/threads/search", json={})).status_code == 404
    assert (await prefixed.get("/hello")).status_code == 404
    spec = (await prefixed.get("/api/openapi.json")).json()
    assert "/hello" in spec["paths"] and "/threads/search" in spec["paths"]


async def test_disabled_surfaces_are_not_served(prefixed: httpx.AsyncClient) -> None:
    assert (await prefixed.post("/api/assistants/search", json={})).status_code == 404
    assert (await prefixed.post("/api/store/namespaces", json={})).status_code == 404
    assert (await prefixed.post("/api/mcp", json={})).status_code == 404  # http.disable_mcp
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": MISSING}}
    assert (await prefixed.post("/api/a2a/config_echo", json=rpc)).status_code == 404
    card = "/api/a2a/config_echo/.well-known/agent-card.json"
    assert (await prefixed.get(card)).status_code == 404
    root_card = "/api/.well-known/agent-card.json?assistant_id=config_echo"
    assert (await prefixed.get(root_card)).status_code == 404
    # Runs still resolve graphs by id without the assistants routes.
    res = await prefixed.post("/api/runs/wait", json={"assistant_id": "config_echo", "input": {}})
    assert res.status_code == 200 and res.json()["seen"]["graph_id"] == "config_echo"


async def test_disable_meta_threads_and_runs(bare: httpx.AsyncClient) -> None:
    assert (await bare.get("/ok", params={"check_db": "1"})).json() == {"ok": True}
    for path in ("/", "/info", "/docs", "/openapi.json", f"/threads/{MISSING}/state"):
        assert (await bare.get(path)).status_code == 404, path
    for path in ("/threads/search", "/runs/crons/search"):
        assert (await bare.post(path, json={})).status_code == 404, path
    assert (await bare.get(f"/threads/{MISSING}/runs")).status_code == 404
    assert (await bare.post("/assistants/search", json={})).status_code == 200
    assert (await bare.post("/store/namespaces", json={})).status_code == 200
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    mcp = await bare.post("/mcp", json=ping, headers={"Accept": "application/json"})
    assert mcp.status_code == 200, "/mcp is served unless http.disable_mcp"
    run = await bare.post("/runs", json={"assistant_id": "config_echo", "input": {}})
    assert run.status_code == 404, "POST /runs belongs to the runs surface"
