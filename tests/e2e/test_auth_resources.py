"""Assistants and crons behind a project's `Auth` (tests/graphs/auth_resources.py), through the
official SDK: handlers see the reference's values, owner filters hide other users' assistants
and crons on every read path (hidden = 404, a refused action = 403, a create colliding with a
hidden assistant = 409), cron searches leave out crons on hidden threads, deleting an assistant
with its threads deletes only the caller's.

Then organisations (Keel-only: built-in auth on, `keel_only`): nothing crosses them, system
assistants are everyone's to read and no one's to change, a cron runs as its creator."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError

from tests.e2e.helpers import system_id
from tests.support.auth_servers import clients_as, keel_only, raw_as, serve_with_auth

NEVER = "0 0 1 1 *"  # crons of these tests never fire while they run
GRAPH = "config_echo"
Clients = dict[str, Any]


@pytest.fixture(scope="module")
def url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from serve_with_auth(backend, request, tmp_path_factory.mktemp(f"res-{backend}"))


@pytest.fixture(scope="module")
def org_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    keel_only(backend)
    workdir = tmp_path_factory.mktemp(f"res-orgs-{backend}")
    yield from serve_with_auth(backend, request, workdir, orgs=True)


@pytest.fixture
async def sdk(url: str) -> AsyncIterator[Clients]:
    async for clients in clients_as(url, ("alice", "bob", "mallory", "auditor")):
        yield clients


@pytest.fixture
async def org_sdk(org_url: str) -> AsyncIterator[Clients]:
    async for clients in clients_as(org_url, ("ann", "gus", "vic", "nobody")):
        yield clients


async def _echo(url: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """What the handler was given for this request (user `echo`: a 418 carrying it)."""
    async with raw_as(url, "echo") as raw:
        res = await raw.request(method, path, json=body)
    assert res.status_code == 418, res.text
    echoed: dict[str, Any] = json.loads(res.json()["detail"])
    return echoed


# ------------------------------------------------------------------------ values


async def test_assistant_handlers_get_the_reference_values(url: str) -> None:
    aid = str(uuid.uuid4())
    body = {"graph_id": GRAPH, "assistant_id": aid, "metadata": {"m": 1}, "name": "n"}
    assert await _echo(url, "POST", "/assistants", body) == {
        "action": "create",
        "value": {
            "assistant_id": aid,
            "graph_id": GRAPH,
            "config": {},
            "context": None,
            "metadata": {"m": 1},
            "name": "n",
        },
    }
    read = {"action": "read", "value": {"assistant_id": aid}}
    for path in ("", "/graph", "/schemas", "/subgraphs"):
        assert await _echo(url, "GET", f"/assistants/{aid}{path}") == read, path
    assert await _echo(url, "POST", f"/assistants/{aid}/versions", {}) == read
    assert await _echo(url, "PATCH", f"/assistants/{aid}", {"metadata": {"x": 2}}) == {
        "action": "update",
        "value": {
            "assistant_id": aid,
            "graph_id": None,
            "config": {},
            "context": None,
            "metadata": {"x": 2},
            "name": None,
        },
    }
    latest = await _echo(url, "POST", f"/assistants/{aid}/latest", {"version": 1})
    assert latest == {"action": "update", "value": {"assistant_id": aid, "version": 1}}
    deleted = await _echo(url, "DELETE", f"/assistants/{aid}")
    assert deleted == {"action": "delete", "value": {"assistant_id": aid}}
    searched: dict[str, Any] = {"graph_id": GRAPH, "metadata": {"m": 1}, "limit": 5, "offset": 1}
    found = await _echo(url, "POST", "/assistants/search", searched)
    assert found == {"action": "search", "value": searched}
    counted = await _echo(url, "POST", "/assistants/count", searched)
    assert counted == {"action": "search", "value": {**searched, "limit": 0, "offset": 0}}


async def test_cron_handlers_get_the_reference_values(url: str) -> None:
    cid = str(uuid.uuid4())
    body = {"assistant_id": GRAPH, "schedule": NEVER, "input": {"a": 1}, "metadata": {"m": 1}}
    created = await _echo(url, "POST", "/runs/crons", body)
    assert created["action"] == "create"
    value = created["value"]
    assert set(value) == {
        "payload",
        "schedule",
        "cron_id",
        "thread_id",
        "user_id",
        "end_time",
        "metadata",
    }
    assert (value["schedule"], value["thread_id"], value["user_id"]) == (NEVER, None, "echo")
    assert value["metadata"] == {"m": 1} and value["payload"]["input"] == {"a": 1}
    uuid.UUID(value["cron_id"])
    assert await _echo(url, "GET", f"/runs/crons/{cid}") == {
        "action": "read",
        "value": {"cron_id": cid},
    }
    assert await _echo(url, "DELETE", f"/runs/crons/{cid}") == {
        "action": "delete",
        "value": {"cron_id": cid},
    }
    patched = await _echo(url, "PATCH", f"/runs/crons/{cid}", {"schedule": NEVER})
    assert patched["action"] == "update"
    assert {k: patched["value"][k] for k in ("cron_id", "schedule", "enabled")} == {
        "cron_id": cid,
        "schedule": NEVER,
        "enabled": None,
    }
    query = {"assistant_id": None, "thread_id": None, "metadata": {"m": 1}}
    found = await _echo(url, "POST", "/runs/crons/search", {"metadata": {"m": 1}, "limit": 3})
    assert found == {"action": "search", "value": {**query, "limit": 3, "offset": 0}}
    counted = await _echo(url, "POST", "/runs/crons/count", {"metadata": {"m": 1}})
    assert counted == {"action": "search", "value": {**query, "limit": 0, "offset": 0}}


# ------------------------------------------------------------------------ assistants


async def _assistant(client: Any, **more: Any) -> dict[str, Any]:
    made: dict[str, Any] = await client.assistants.create(GRAPH, **more)
    return made


async def test_assistants_are_their_owners(sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    tag = uuid.uuid4().hex
    mine = await _assistant(alice, metadata={"tag": tag})
    theirs = await _assistant(bob, metadata={"tag": tag})
    assert mine["metadata"] == {"tag": tag, "owner": "alice"}
    found = await alice.assistants.search(metadata={"tag": tag})
    assert [a["assistant_id"] for a in found] == [mine["assistant_id"]]
    assert await alice.assistants.count(metadata={"tag": tag}) == 1
    assert await bob.assistants.count(metadata={"tag": tag}) == 1
    assert (await bob.assistants.get(theirs["assistant_id"]))["name"] == "Untitled"


async def test_a_hidden_assistant_is_not_found_on_every_path(sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    aid = (await _assistant(alice))["assistant_id"]
    calls = [
        bob.assistants.get(aid),
        bob.assistants.get_graph(aid),
        bob.assistants.get_schemas(aid),
        bob.assistants.get_subgraphs(aid),
        bob.assistants.get_versions(aid),
        bob.assistants.update(aid, metadata={"x": 1}),
        bob.assistants.set_latest(aid, 1),
        bob.assistants.delete(aid),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            await call
    assert (await alice.assistants.get(aid))["version"] == 1


async def test_a_create_colliding_with_a_hidden_assistant_conflicts(sdk: Clients) -> None:
    aid = (await _assistant(sdk["alice"]))["assistant_id"]
    for if_exists in ("raise", "do_nothing"):
        with pytest.raises(ConflictError):
            await _assistant(sdk["bob"], assistant_id=aid, if_exists=if_exists)
    again = await _assistant(sdk["alice"], assistant_id=aid, if_exists="do_nothing")
    assert again["assistant_id"] == aid


async def test_a_refusing_handler_is_forbidden(sdk: Clients) -> None:
    aid = (await _assistant(sdk["mallory"]))["assistant_id"]
    with pytest.raises(PermissionDeniedError):
        await sdk["mallory"].assistants.delete(aid)
    assert (await sdk["mallory"].assistants.get(aid))["assistant_id"] == aid


async def test_deleting_an_assistant_deletes_only_the_callers_threads(sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    aid = (await _assistant(alice, metadata={"shared": True}))["assistant_id"]
    own = (await alice.threads.create())["thread_id"]
    other = (await bob.threads.create())["thread_id"]
    await alice.runs.wait(own, aid, input={})
    await bob.runs.wait(other, aid, input={})  # a shared assistant: bob may run it
    assert (await bob.threads.get(other))["metadata"]["assistant_id"] == aid
    await alice.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        await alice.threads.get(own)
    assert (await bob.threads.get(other))["thread_id"] == other


# ------------------------------------------------------------------------ crons


async def test_crons_are_their_owners(url: str, sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    tag = uuid.uuid4().hex
    cron = await alice.crons.create(GRAPH, schedule=NEVER, metadata={"tag": tag})
    cid = cron["cron_id"]
    assert cron["metadata"] == {"tag": tag, "owner": "alice"} and cron["user_id"] == "alice"
    assert [c["cron_id"] for c in await alice.crons.search(metadata={"tag": tag})] == [cid]
    assert await alice.crons.count(metadata={"tag": tag}) == 1
    assert await bob.crons.search(metadata={"tag": tag}) == []
    assert await bob.crons.count(metadata={"tag": tag}) == 0
    for call in (bob.crons.update(cid, schedule=NEVER), bob.crons.delete(cid)):
        with pytest.raises(NotFoundError):
            await call
    async with raw_as(url, "bob") as raw:
        assert (await raw.get(f"/runs/crons/{cid}")).status_code == 404
    await alice.crons.delete(cid)


async def test_a_cron_needs_its_assistant_and_thread_visible(sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    aid = (await _assistant(alice))["assistant_id"]
    tid = (await alice.threads.create())["thread_id"]
    with pytest.raises(NotFoundError):
        await bob.crons.create(aid, schedule=NEVER)
    with pytest.raises(NotFoundError):
        await bob.crons.create_for_thread(tid, GRAPH, schedule=NEVER)
    # A system assistant is everyone's: no assistants.read handler is asked for it.
    cron = await bob.crons.create(GRAPH, schedule=NEVER)
    assert cron["assistant_id"] == system_id(GRAPH)
    made = await alice.crons.create_for_thread(tid, aid, schedule=NEVER)
    assert made["thread_id"] == tid


async def test_a_cron_search_leaves_out_crons_on_hidden_threads(sdk: Clients) -> None:
    alice, auditor = sdk["alice"], sdk["auditor"]
    tag = uuid.uuid4().hex
    tid = (await alice.threads.create())["thread_id"]
    on_thread = await alice.crons.create_for_thread(
        tid, GRAPH, schedule=NEVER, metadata={"tag": tag}
    )
    loose = await alice.crons.create(GRAPH, schedule=NEVER, metadata={"tag": tag})
    assert {c["cron_id"] for c in await alice.crons.search(metadata={"tag": tag})} == {
        on_thread["cron_id"],
        loose["cron_id"],
    }
    # The auditor's crons.search handler allows every cron; their threads handler hides
    # alice's thread, and with it the cron on it.
    seen = await auditor.crons.search(metadata={"tag": tag})
    assert [c["cron_id"] for c in seen] == [loose["cron_id"]]
    assert await auditor.crons.count(metadata={"tag": tag}) == 1


# ------------------------------------------------------------------------ organisations


async def _run_not_found(client: Any, assistant_id: str) -> None:
    """A stateless run of the assistant is refused as if it did not exist."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(None, assistant_id, input={})
    assert refused.value.response.status_code == 404


async def test_organisations_do_not_see_each_others_assistants(org_sdk: Clients) -> None:
    ann, gus = org_sdk["ann"], org_sdk["gus"]
    tag = uuid.uuid4().hex
    aid = (await _assistant(ann, metadata={"tag": tag}))["assistant_id"]
    assert await gus.assistants.search(metadata={"tag": tag}) == []
    assert await gus.assistants.count(metadata={"tag": tag}) == 0
    assert await org_sdk["nobody"].assistants.count(metadata={"tag": tag}) == 0
    for call in (gus.assistants.get(aid), gus.assistants.get_versions(aid)):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(NotFoundError):
        await gus.assistants.update(aid, name="mine")
    with pytest.raises(ConflictError):
        await _assistant(gus, assistant_id=aid, if_exists="do_nothing")
    await _run_not_found(gus, aid)  # nor run it
    assert (await ann.assistants.get(aid))["metadata"] == {"tag": tag}
    assert await org_sdk["vic"].assistants.count(metadata={"tag": tag}) == 1  # same org


async def test_only_system_assistants_are_shared(org_sdk: Clients) -> None:
    """An assistant without an organisation (its creator has none) is not everyone's."""
    nobody, ann = org_sdk["nobody"], org_sdk["ann"]
    tag = uuid.uuid4().hex
    aid = (await _assistant(nobody, metadata={"tag": tag}))["assistant_id"]
    assert (await nobody.assistants.get(aid))["assistant_id"] == aid
    assert await ann.assistants.count(metadata={"tag": tag}) == 0
    for call in (ann.assistants.get(aid), ann.crons.create(aid, schedule=NEVER)):
        with pytest.raises(NotFoundError):
            await call
    await _run_not_found(ann, aid)


async def test_system_assistants_are_read_only_for_organisations(org_sdk: Clients) -> None:
    sid = system_id(GRAPH)
    for name in ("ann", "gus", "nobody"):
        client = org_sdk[name]
        found = await client.assistants.search(graph_id=GRAPH, metadata={"created_by": "system"})
        assert [a["assistant_id"] for a in found] == [sid]
        assert (await client.assistants.get(sid))["graph_id"] == GRAPH
        assert await client.assistants.get_versions(sid)
        assert "input_schema" in await client.assistants.get_schemas(sid)
        for call in (
            client.assistants.update(sid, name="taken"),
            client.assistants.set_latest(sid, 1),
            client.assistants.delete(sid),
        ):
            with pytest.raises(PermissionDeniedError):
                await call
    assert (await org_sdk["ann"].assistants.get(sid))["version"] == 1


async def test_the_role_is_a_ceiling(org_sdk: Clients) -> None:
    with pytest.raises(PermissionDeniedError):
        await _assistant(org_sdk["vic"])
    assert await org_sdk["vic"].assistants.search(graph_id=GRAPH) != []


async def test_organisations_do_not_see_each_others_crons(org_sdk: Clients) -> None:
    ann, gus = org_sdk["ann"], org_sdk["gus"]
    tag = uuid.uuid4().hex
    aid = (await _assistant(ann))["assistant_id"]
    tid = (await ann.threads.create())["thread_id"]
    cid = (await ann.crons.create(aid, schedule=NEVER, metadata={"tag": tag}))["cron_id"]
    assert await gus.crons.search(metadata={"tag": tag}) == []
    assert await gus.crons.count(metadata={"tag": tag}) == 0
    for call in (
        gus.crons.update(cid, schedule=NEVER),
        gus.crons.delete(cid),
        gus.crons.create(aid, schedule=NEVER),
        gus.crons.create_for_thread(tid, GRAPH, schedule=NEVER),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert [c["cron_id"] for c in await ann.crons.search(metadata={"tag": tag})] == [cid]
    assert (await gus.crons.create(GRAPH, schedule=NEVER))["user_id"] == "gus"


async def test_a_cron_runs_as_its_creator(org_url: str, org_sdk: Clients) -> None:
    forged = {"langgraph_auth_user": {"identity": "gus", "org": "globex"}, "k": "v"}
    cron = await org_sdk["ann"].crons.create(GRAPH, schedule=NEVER, config={"configurable": forged})
    configurable = cron["payload"]["config"]["configurable"]
    assert configurable["k"] == "v"
    assert configurable["langgraph_auth_user_id"] == "ann"
    user = configurable["langgraph_auth_user"]
    assert (user["identity"], user["org"], user["role"]) == ("ann", "acme", "member")
    assert "assistants:create" in configurable["langgraph_auth_permissions"]
    async with raw_as(org_url, "ann") as raw:
        patched = await raw.patch(
            f"/runs/crons/{cron['cron_id']}", json={"config": {"configurable": forged}}
        )
    assert patched.status_code == 200, patched.text
    after = patched.json()["payload"]["config"]["configurable"]["langgraph_auth_user"]
    assert after["identity"] == "ann"


async def test_unauthenticated_requests_are_refused(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as raw:
        for method, path in (("POST", "/assistants/search"), ("POST", "/runs/crons/search")):
            res = await raw.request(method, path, json={})
            assert res.status_code == 401, path
