"""The store behind a project's `Auth` (tests/graphs/auth_resources.py), through the official SDK:
handlers see the reference's values, a handler's rewrite of the namespace
(`value["namespace"] = (ctx.user.identity, *value["namespace"])`) is what the store uses and is
checked again (422), a filter a handler returns for a search narrows it (for a get or a
delete too, in Keel).

Then organisations (Keel-only: built-in auth on): each organisation has a store of its own, for
items, searches (semantic ones too), namespaces, through the API and in its runs' graphs; a
namespace starting with the reserved `keel:org` label is refused, whoever writes it (a client,
a handler's rewrite)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.auth_servers import (
    FAKE_EMBED_INDEX,
    clients_as,
    keel_only,
    raw_as,
    serve_with_auth,
)

Clients = dict[str, Any]
STORE = {"index": FAKE_EMBED_INDEX}


@pytest.fixture(scope="module")
def url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp(f"store-{backend}")
    yield from serve_with_auth(backend, request, workdir, store=STORE)


@pytest.fixture(scope="module")
def org_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    keel_only(backend)
    workdir = tmp_path_factory.mktemp(f"store-orgs-{backend}")
    yield from serve_with_auth(backend, request, workdir, orgs=True, store=STORE)


@pytest.fixture
async def sdk(url: str) -> AsyncIterator[Clients]:
    async for clients in clients_as(url, ("alice", "bob", "picky")):
        yield clients


@pytest.fixture
async def org_sdk(org_url: str) -> AsyncIterator[Clients]:
    async for clients in clients_as(org_url, ("ann", "ada", "gus", "nobody")):
        yield clients


async def _echo(url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """What the handler was given for this request (user `echo`: a 418 carrying it)."""
    async with raw_as(url, "echo") as raw:
        res = await raw.request(method, path, **kwargs)
    assert res.status_code == 418, res.text
    echoed: dict[str, Any] = json.loads(res.json()["detail"])
    return echoed


def _keys(found: Any) -> list[str]:
    return sorted(i["key"] for i in found["items"])


# ------------------------------------------------------------------------ values


async def test_store_handlers_get_the_reference_values(url: str) -> None:
    put = {"namespace": ["a", "b"], "key": "k", "value": {"v": 1}, "index": False, "ttl": 5}
    assert await _echo(url, "PUT", "/store/items", json=put) == {"action": "put", "value": put}
    got = await _echo(url, "GET", "/store/items", params={"namespace": "a.b", "key": "k"})
    assert got == {
        "action": "get",
        "value": {"namespace": ["a", "b"], "key": "k", "refresh_ttl": None},
    }
    gone = await _echo(url, "DELETE", "/store/items", json={"namespace": ["a"], "key": "k"})
    assert gone == {"action": "delete", "value": {"namespace": ["a"], "key": "k"}}
    search = {"namespace_prefix": ["a"], "filter": {"v": 1}, "limit": 3, "offset": 1}
    found = await _echo(url, "POST", "/store/items/search", json={**search, "query": "q"})
    assert found == {
        "action": "search",
        "value": {
            "namespace": ["a"],
            "filter": {"v": 1},
            "limit": 3,
            "offset": 1,
            "query": "q",
            "refresh_ttl": None,
        },
    }
    listed = await _echo(url, "POST", "/store/namespaces", json={"suffix": ["b"], "max_depth": 2})
    assert listed == {
        "action": "list_namespaces",
        "value": {"namespace": None, "suffix": ["b"], "max_depth": 2, "limit": 100, "offset": 0},
    }


# ------------------------------------------------------------------------ namespaces


async def test_a_rewritten_namespace_is_where_items_go(sdk: Clients) -> None:
    alice, bob = sdk["alice"], sdk["bob"]
    ns = ["notes", uuid.uuid4().hex]
    await alice.store.put_item(ns, "k", {"text": "alice's"})
    await bob.store.put_item(ns, "k", {"text": "bob's"})
    assert (await alice.store.get_item(ns, "k"))["value"] == {"text": "alice's"}
    item = await bob.store.get_item(ns, "k")
    assert item["value"] == {"text": "bob's"} and item["namespace"] == ["bob", *ns]
    found = await alice.store.search_items(ns)
    assert [i["namespace"] for i in found["items"]] == [["alice", *ns]]
    listed = await alice.store.list_namespaces(prefix=ns[:1])
    assert ["alice", *ns] in listed["namespaces"]
    assert all(n[0] == "alice" for n in listed["namespaces"])
    await alice.store.delete_item(ns, "k")
    assert await alice.store.get_item(ns, "k") is None
    assert (await bob.store.get_item(ns, "k"))["value"] == {"text": "bob's"}


async def test_a_rewritten_namespace_is_checked_again(url: str) -> None:
    async with raw_as(url, "dotty") as raw:
        put = await raw.put("/store/items", json={"namespace": ["ok"], "key": "k", "value": {}})
        got = await raw.get("/store/items", params={"namespace": "ok", "key": "k"})
        found = await raw.post("/store/items/search", json={"namespace_prefix": ["ok"]})
        listed = await raw.post("/store/namespaces", json={})
    for res in (put, got, found, listed):
        assert res.status_code == 422, res.text


async def test_a_search_filter_from_the_handler_narrows_the_search(sdk: Clients) -> None:
    picky = sdk["picky"]
    ns = ["docs", uuid.uuid4().hex]
    await picky.store.put_item(ns, "open", {"public": True, "text": "open cats"})
    await picky.store.put_item(ns, "closed", {"public": False, "text": "closed cats"})
    await picky.store.put_item(ns, "unset", {"text": "unset cats"})
    assert _keys(await picky.store.search_items(ns)) == ["open"]
    assert _keys(await picky.store.search_items(ns, query="cats")) == ["open"]


async def test_a_handler_filter_is_anded_with_the_callers(sdk: Clients, backend: str) -> None:
    # The reference hands the store {"$and": [caller's, handler's]}, which its in-memory store
    # reads as a field named "$and": nothing matches. Keel ANDs them.
    keel_only(backend)
    picky = sdk["picky"]
    ns = ["docs", uuid.uuid4().hex]
    for key, public, n in (("a", True, 1), ("b", True, 2), ("c", False, 2)):
        await picky.store.put_item(ns, key, {"public": public, "n": n})
    assert _keys(await picky.store.search_items(ns, filter={"n": 2})) == ["b"]
    assert _keys(await picky.store.search_items(ns, filter={"n": {"$gte": 1}})) == ["a", "b"]


async def test_get_and_delete_apply_the_handlers_filter(sdk: Clients, backend: str) -> None:
    # The reference ignores the filter a get or delete handler returns; Keel hides the item.
    keel_only(backend)
    picky = sdk["picky"]
    ns = ["docs", uuid.uuid4().hex]
    await picky.store.put_item(ns, "open", {"public": True})
    await picky.store.put_item([*ns, "closed"], "closed", {"public": False})
    assert (await picky.store.get_item(ns, "open"))["value"] == {"public": True}
    assert await picky.store.get_item([*ns, "closed"], "closed") is None
    await picky.store.delete_item([*ns, "closed"], "closed")  # not there for picky
    listed = await picky.store.list_namespaces(prefix=ns)
    assert listed["namespaces"] == [["picky", *ns], ["picky", *ns, "closed"]]
    await picky.store.delete_item(ns, "open")
    assert await picky.store.get_item(ns, "open") is None


# ------------------------------------------------------------------------ organisations


async def test_organisations_have_stores_of_their_own(org_sdk: Clients) -> None:
    ann, ada, gus = org_sdk["ann"], org_sdk["ada"], org_sdk["gus"]
    ns = ["plans", uuid.uuid4().hex]
    await ann.store.put_item(ns, "k", {"text": "acme launch plan"})
    await gus.store.put_item(ns, "k", {"text": "globex merger plan"})
    await gus.store.put_item(ns, "g", {"text": "globex only"})
    assert (await ada.store.get_item(ns, "k"))["value"] == {"text": "acme launch plan"}
    item = await gus.store.get_item(ns, "k")
    assert item["value"] == {"text": "globex merger plan"} and item["namespace"] == ns
    assert await ann.store.get_item(ns, "g") is None
    assert _keys(await ann.store.search_items(ns)) == ["k"]
    assert _keys(await ann.store.search_items([])) == ["k"]
    semantic = await ann.store.search_items(ns, query="globex merger plan")
    assert [i["value"]["text"] for i in semantic["items"]] == ["acme launch plan"]
    assert (await gus.store.list_namespaces(prefix=ns))["namespaces"] == [ns]
    assert (await org_sdk["nobody"].store.list_namespaces(prefix=ns))["namespaces"] == []
    await gus.store.delete_item(ns, "k")
    assert (await ann.store.get_item(ns, "k"))["value"] == {"text": "acme launch plan"}


async def test_a_runs_graph_uses_its_organisations_store(org_sdk: Clients) -> None:
    """tests/graphs/store_org.py writes through its `store` argument and reads through
    `get_store()` in a sync node: both are the run's organisation's store."""
    ann, gus = org_sdk["ann"], org_sdk["gus"]
    ns = ["team", uuid.uuid4().hex]
    await gus.store.put_item(ns, "theirs", {"text": "theirs"})
    out = await ann.runs.wait(None, "store_org", input={"namespace": ns, "put": "ours"})
    assert out["seen"] == ["ours"]
    assert ns in out["namespaces"]
    assert not any(n[0].startswith("keel:org") for n in out["namespaces"])
    assert (await ann.store.get_item(ns, "ours"))["value"] == {"text": "ours"}
    assert await gus.store.get_item(ns, "ours") is None
    assert _keys(await gus.store.search_items(ns)) == ["theirs"]


async def test_the_reserved_label_is_refused(org_url: str) -> None:
    theirs = ["keel:org:globex", "plans"]
    async with raw_as(org_url, "ann") as raw:
        answers = [
            await raw.put("/store/items", json={"namespace": theirs, "key": "k", "value": {}}),
            await raw.get("/store/items", params={"namespace": ".".join(theirs), "key": "k"}),
            await raw.post("/store/items/search", json={"namespace_prefix": ["keel:org"]}),
            await raw.post("/store/namespaces", json={"prefix": theirs}),
            await raw.request("DELETE", "/store/items", json={"namespace": theirs, "key": "k"}),
        ]
    for res in answers:
        assert res.status_code == 422, res.text
        assert "reserved" in res.json()["detail"]
    async with raw_as(org_url, "sly") as raw:  # a handler's rewrite does not get around it
        res = await raw.put("/store/items", json={"namespace": ["x"], "key": "k", "value": {}})
    assert res.status_code == 422, res.text


async def test_unauthenticated_store_requests_are_refused(org_url: str) -> None:
    async with httpx.AsyncClient(base_url=org_url, timeout=30.0) as raw:
        res = await raw.post("/store/items/search", json={})
    assert res.status_code == 401
