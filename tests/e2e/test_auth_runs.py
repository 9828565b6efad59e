"""Auth on runs and thread state, with the reference's classic owner-only handlers
(tests/support/auth_owner.py: a bearer token names the user; every handler stamps `owner` and
filters on it). Alice's threads, runs, state, history and streams are not found for Bob, as a
missing one is; runs carry their creator (`configurable.langgraph_auth_*`, a factory's
`ServerRuntime.user`), which a client cannot forge."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import database_for
from tests.support.reference import ROOT, ReferenceServer
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
AUTH = f"{ROOT / 'tests' / 'support' / 'auth_owner.py'}:auth"
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}
HOUR = 3600  # `after_seconds` that keeps a run pending for the whole test


@pytest.fixture(scope="module")
def served(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A server with the owner-only auth; its URL and the file its factory logs builds to."""
    workdir = tmp_path_factory.mktemp(f"auth-runs-{backend}")
    config = workdir / "langgraph.json"
    graphs = {
        "config_echo": f"{GRAPHS / 'config_echo.py'}:graph",
        "auth_runtime": f"{GRAPHS / 'auth_runtime.py'}:make_graph",
    }
    config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "auth": {"path": AUTH}}))
    log = workdir / "factory.log"
    env = {"KEEL_TEST_FACTORY_LOG": str(log)}
    srv: KeelServer | ReferenceServer
    if backend == "reference":
        srv = ReferenceServer(config, workdir, env=env)
    else:
        database = database_for(backend, request, workdir)
        srv = KeelServer(config, workdir, database=database, env=env)
    srv.start()
    try:
        yield srv.url, log
    finally:
        srv.stop()


@pytest.fixture
async def http(served: tuple[str, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[0], timeout=60.0) as raw:
        yield raw


def builds(log: Path) -> list[str]:
    """What the factory logged since the last call (`<access_context> <identity>` each)."""
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def alice_thread(http: httpx.AsyncClient, graph: str = "config_echo") -> tuple[str, str]:
    """A thread of Alice's with one finished run: (thread_id, run_id)."""
    thread = await ok(await http.post("/threads", json={}, headers=ALICE))
    tid = thread["thread_id"]
    path = f"/threads/{tid}/runs/wait"
    await ok(await http.post(path, json={"assistant_id": graph, "input": {}}, headers=ALICE))
    runs = await ok(await http.get(f"/threads/{tid}/runs", headers=ALICE))
    return tid, runs[0]["run_id"]


# ----------------------------------------------------------------- the user a run carries
async def test_the_graph_sees_the_runs_creator_whatever_the_body_says(
    http: httpx.AsyncClient,
) -> None:
    forged = {"langgraph_auth_user_id": "mallory", "langgraph_auth_user": {"identity": "mallory"}}
    bodies = [
        {"assistant_id": "config_echo", "input": {}},
        {"assistant_id": "config_echo", "input": {}, "config": {"configurable": forged}},
        {"assistant_id": "config_echo", "input": {}, "context": {**forged, "x": "1"}},
    ]
    for body in bodies:
        seen = (await ok(await http.post("/runs/wait", json=body, headers=ALICE)))["seen"]
        assert seen["langgraph_auth_user_id"] == "alice", body
        assert seen["user_id"] == "alice"  # as the reference: the user's, unless given
    given = {"assistant_id": "config_echo", "input": {}}
    given["config"] = {"configurable": {"user_id": "u1"}}
    seen = (await ok(await http.post("/runs/wait", json=given, headers=ALICE)))["seen"]
    assert seen["user_id"] == "u1" and seen["langgraph_auth_user_id"] == "alice"


async def test_the_run_stores_its_creator_in_its_config(http: httpx.AsyncClient) -> None:
    body = {"assistant_id": "config_echo", "input": {}, "after_seconds": HOUR}
    body["config"] = {"configurable": {"langgraph_auth_permissions": ["everything"]}}
    run = await ok(await http.post("/runs", json=body, headers=ALICE))
    configurable = run["kwargs"]["config"]["configurable"]
    assert configurable["langgraph_auth_user_id"] == "alice"
    assert configurable["langgraph_auth_permissions"] == ["team:alice"]
    user = configurable["langgraph_auth_user"]
    assert user["identity"] == "alice" and user["tier"] == "gold"
    assert user["permissions"] == ["team:alice"]


async def test_a_factory_gets_the_user_to_run_and_to_read_state(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    log = served[1]
    builds(log)
    tid, _ = await alice_thread(http, "auth_runtime")
    assert builds(log) == ["threads.create_run alice"]
    state = await ok(await http.get(f"/threads/{tid}/state", headers=ALICE))
    seen = state["values"]["seen"]
    assert seen["runtime_user"] == "alice" and seen["user_id"] == "alice"
    assert seen["permissions"] == ["team:alice"]
    assert seen["user"]["identity"] == "alice" and seen["user"]["tier"] == "gold"
    await ok(await http.post(f"/threads/{tid}/history", json={}, headers=ALICE))
    assert builds(log) == ["threads.read alice", "threads.read alice"]
    update: dict[str, Any] = {"values": {"seen": {}}}
    await ok(await http.post(f"/threads/{tid}/state", json=update, headers=ALICE))
    # The reference builds the graph again to read the new state; Keel reads it with the first.
    assert builds(log)[0] == "threads.update alice"


# -------------------------------------------------------------------------- owner only
def _same_detail(hidden: httpx.Response, missing: httpx.Response, ids: dict[str, str]) -> None:
    """Hidden is not found, as a missing one: same status, same detail (ids aside)."""
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    detail = hidden.json()["detail"]
    other = missing.json()["detail"]
    for ident, mark in ids.items():
        detail, other = detail.replace(ident, mark), other.replace(ident, mark)
    assert detail == other


async def test_alices_runs_and_state_are_not_found_for_bob(http: httpx.AsyncClient) -> None:
    tid, rid = await alice_thread(http)
    missing = str(uuid.uuid4())
    run = {"assistant_id": "config_echo", "input": {}}
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/threads/{t}/runs", run),
        ("POST", "/threads/{t}/runs", {**run, "if_not_exists": "create"}),
        ("POST", "/threads/{t}/runs/stream", run),
        ("POST", "/threads/{t}/runs/wait", run),
        ("GET", "/threads/{t}/runs", None),
        ("GET", "/threads/{t}/runs/{r}", None),
        ("GET", "/threads/{t}/runs/{r}/join", None),
        ("POST", "/threads/{t}/runs/{r}/cancel", None),
        ("DELETE", "/threads/{t}/runs/{r}", None),
        ("POST", "/runs/cancel", {"thread_id": "{t}", "run_ids": ["{r}"]}),
        ("GET", "/threads/{t}/state", None),
        ("POST", "/threads/{t}/state", {"values": {"seen": {}}}),
        ("POST", "/threads/{t}/history", {}),
        ("GET", "/threads/{t}/history", None),
    ]
    for method, path, body in calls:
        hidden = await _call(http, method, path, body, tid, rid)
        if body and body.get("if_not_exists"):  # it would create a missing thread
            body = run
        gone = await _call(http, method, path, body, missing, rid)
        _same_detail(hidden, gone, {tid: "T", missing: "T", rid: "R"})
    # Alice still has it all.
    await ok(await http.get(f"/threads/{tid}/runs/{rid}", headers=ALICE))
    history = await ok(await http.post(f"/threads/{tid}/history", json={}, headers=ALICE))
    assert history and history[0]["values"]["seen"]["langgraph_auth_user_id"] == "alice"


async def _call(
    http: httpx.AsyncClient, method: str, path: str, body: Any, tid: str, rid: str
) -> httpx.Response:
    text = json.dumps(body).replace("{t}", tid).replace("{r}", rid) if body is not None else None
    url = path.replace("{t}", tid).replace("{r}", rid)
    content = text.encode() if text is not None else None
    headers = {**BOB, "Content-Type": "application/json"}
    return await http.request(method, url, content=content, headers=headers)


async def test_bob_cannot_follow_alices_streams(http: httpx.AsyncClient, backend: str) -> None:
    """A run's join stream and the thread stream (replay too) of Alice's are not Bob's: Keel
    answers 404 as for a missing run or thread; the reference opens the stream and sends only
    an error event (for a missing one too)."""
    tid, rid = await alice_thread(http)
    streams = ((f"/threads/{tid}/runs/{rid}/stream", "0"), (f"/threads/{tid}/stream", "-1"))
    for path, last in streams:
        # The reference's in-memory streams take only their own ids as Last-Event-ID.
        headers = {**BOB} if backend == "reference" else {**BOB, "Last-Event-ID": last}
        async with http.stream("GET", path, headers=headers) as response:
            body = (await response.aread()) if response.status_code != 200 else b""
            if backend == "reference":
                assert response.status_code == 200
                first = await anext(response.aiter_lines())
                assert first == "event: error", first
            else:
                assert response.status_code == 404, body


async def test_bob_cancels_none_of_alices_runs(http: httpx.AsyncClient) -> None:
    thread = await ok(await http.post("/threads", json={}, headers=ALICE))
    tid = thread["thread_id"]
    body = {"assistant_id": "config_echo", "input": {}, "after_seconds": HOUR}
    run = await ok(await http.post(f"/threads/{tid}/runs", json=body, headers=ALICE))
    rid = run["run_id"]
    for cancel in ({"thread_id": tid, "run_ids": [rid]}, {"status": "pending"}):
        await http.post("/runs/cancel", json=cancel, headers=BOB)  # 404, or Bob's own runs
        got = await ok(await http.get(f"/threads/{tid}/runs/{rid}", headers=ALICE))
        assert got["status"] == "pending"
    cancelled = await http.post(f"/threads/{tid}/runs/{rid}/cancel", headers=ALICE)
    assert cancelled.status_code == 202, cancelled.text
    got = await ok(await http.get(f"/threads/{tid}/runs/{rid}", headers=ALICE))
    assert got["status"] == "interrupted"
    deleted = await http.delete(f"/threads/{tid}/runs/{rid}", headers=ALICE)
    assert deleted.status_code == 204, deleted.text


async def test_runs_without_a_thread_of_their_own_belong_to_their_creator(
    http: httpx.AsyncClient,
) -> None:
    """Stateless runs, batches and `if_not_exists=create` make threads stamped by the
    handler (owner) that only their creator sees; so are the runs' metadata."""
    kept = {"assistant_id": "config_echo", "input": {}, "on_completion": "keep"}
    run = await ok(await http.post("/runs", json={**kept, "after_seconds": HOUR}, headers=BOB))
    assert run["metadata"]["owner"] == "bob"
    batch = [{"assistant_id": "config_echo", "input": {}, "metadata": {"n": i}} for i in (1, 2)]
    runs = await ok(await http.post("/runs/batch", json=batch, headers=BOB))
    assert [r["metadata"]["owner"] for r in runs] == ["bob", "bob"]
    assert [r["metadata"]["n"] for r in runs] == [1, 2]
    new = str(uuid.uuid4())
    created = {"assistant_id": "config_echo", "input": {}, "if_not_exists": "create"}
    seen = await ok(await http.post(f"/threads/{new}/runs/wait", json=created, headers=BOB))
    assert seen["seen"]["langgraph_auth_user_id"] == "bob"
    for tid in (run["thread_id"], new):
        thread = await ok(await http.get(f"/threads/{tid}", headers=BOB))
        assert thread["metadata"]["owner"] == "bob"
        assert (await http.get(f"/threads/{tid}", headers=ALICE)).status_code == 404
    await http.post("/runs/cancel", json={"status": "pending"}, headers=BOB)


async def test_an_assistant_outside_the_callers_scope_cannot_run(
    http: httpx.AsyncClient,
) -> None:
    body = {"graph_id": "config_echo", "metadata": {"owner": "alice"}}
    assistant = await ok(await http.post("/assistants", json=body, headers=ALICE))
    aid = assistant["assistant_id"]
    run = {"assistant_id": aid, "input": {}}
    seen = await ok(await http.post("/runs/wait", json=run, headers=ALICE))
    assert seen["seen"]["assistant_id"] == aid
    hidden = await http.post("/runs/wait", json=run, headers=BOB)
    missing = str(uuid.uuid4())
    gone = await http.post("/runs/wait", json={**run, "assistant_id": missing}, headers=BOB)
    _same_detail(hidden, gone, {aid: "A", missing: "A"})


async def test_runs_need_credentials(http: httpx.AsyncClient) -> None:
    body = {"assistant_id": "config_echo", "input": {}}
    for headers in ({}, {"Authorization": "Bearer mallory"}):
        response = await http.post("/runs/wait", json=body, headers=headers)
        assert response.status_code == 401 and response.json()["detail"], response.text
