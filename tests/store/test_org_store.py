"""One organisation's view of Keel's store (`keel.store_orgs.for_org`), as a
graph's `BaseStore` and the `/store` API use it: each organisation sees only its own items,
namespaces and vectors, under the namespaces it wrote (the reserved label never shows), whatever
it asks; a namespace starting with the reserved label is refused. The namespace listing of a
view is LangGraph's: the same as an `InMemoryStore` holding only that organisation's items.
Also the `$and` / `$or` / `$contains` filters an auth handler's filter is ANDed in with."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from keel.errors import InvalidInput
from keel.store import KeelStore
from keel.store_orgs import ORG_LABEL, for_org, for_run, for_user, org_label, run_org
from tests.store.conftest import KEEL_BACKENDS, Stores, unique_ns

BACKENDS = KEEL_BACKENDS


async def _keel(stores: Stores) -> KeelStore:
    store = await stores.open(fresh=True)
    assert isinstance(store, KeelStore)
    return store


async def test_each_organisation_sees_only_its_items(stores: Stores) -> None:
    store = await _keel(stores)
    acme, globex, none = for_org(store, "acme"), for_org(store, "globex"), for_org(store, None)
    ns = ("notes", "q3")
    await acme.aput(ns, "k", {"text": "acme launch plan"})
    await globex.aput(ns, "k", {"text": "globex merger plan"})
    await none.aput(ns, "n", {"text": "nobody's note"})
    item = await acme.aget(ns, "k")
    assert item is not None and item.namespace == ns and item.value["text"] == "acme launch plan"
    assert await acme.aget(ns, "n") is None and await globex.aget(ns, "n") is None
    assert [i.value["text"] for i in await acme.asearch(())] == ["acme launch plan"]
    found = await acme.asearch(("notes",), query="globex merger plan")
    assert [(i.namespace, i.value["text"]) for i in found] == [(ns, "acme launch plan")]
    assert await acme.alist_namespaces() == [ns]
    raw = await store.aget((org_label("acme"), *ns), "k")
    assert raw is not None and raw.value["text"] == "acme launch plan"
    assert await store.aget(ns, "k") is None  # nothing outside the organisations' labels
    await globex.adelete(ns, "k")
    assert (await acme.aget(ns, "k")) is not None


async def test_organisation_labels_never_collide(stores: Stores) -> None:
    store = await _keel(stores)
    orgs = ["a", "a.b", "a:b", "a/b", "a%2Eb", "a b", "ä"]
    for org in orgs:
        await for_org(store, org).aput(("x",), "k", {"org": org})
    for org in orgs:
        view = for_org(store, org)
        assert [i.value["org"] for i in await view.asearch(())] == [org]
        assert await view.alist_namespaces() == [("x",)]
    labels = {org_label(org) for org in orgs} | {org_label(None)}
    assert len(labels) == len(orgs) + 1 and all("." not in label for label in labels)


async def test_the_reserved_label_is_refused(stores: Stores) -> None:
    view = for_org(await _keel(stores), "acme")
    for ns in ((ORG_LABEL, "x"), (f"{ORG_LABEL}:globex",), (f"{ORG_LABEL}:", "x")):
        with pytest.raises(InvalidInput, match="reserved"):
            await view.aput(ns, "k", {})
        with pytest.raises(InvalidInput, match="reserved"):
            await view.aget(ns, "k")
        with pytest.raises(InvalidInput, match="reserved"):
            await view.asearch(ns)
        with pytest.raises(InvalidInput, match="reserved"):
            await view.alist_namespaces(prefix=ns)
    await view.aput(("x", ORG_LABEL), "k", {})  # not a first label: an ordinary one


async def test_sync_callers_get_the_same_view(stores: Stores) -> None:
    """Sync graph nodes (worker threads) reach the store through `batch`."""
    store = await _keel(stores)
    acme = for_org(store, "acme")
    await for_org(store, "globex").aput(("s",), "k", {"v": "globex"})
    await asyncio.to_thread(acme.put, ("s",), "k", {"v": "acme"})
    item = await asyncio.to_thread(acme.get, ("s",), "k")
    assert item is not None and item.value == {"v": "acme"} and item.namespace == ("s",)
    assert [i.value for i in await asyncio.to_thread(acme.search, ("s",))] == [{"v": "acme"}]
    assert await asyncio.to_thread(acme.list_namespaces) == [("s",)]


NAMESPACES = [
    ("users", "u1", "prefs"),
    ("users", "u1", "notes", "work"),
    ("users", "u2", "prefs"),
    ("docs",),
    ("docs", "prefs"),
]
LISTINGS: list[dict[str, Any]] = [
    {},
    {"prefix": ("users",)},
    {"prefix": ("users", "*", "prefs")},
    {"suffix": ("prefs",)},
    {"suffix": ("*", "prefs")},
    {"suffix": ("*", "docs")},  # would match (label, "docs") if the label showed through
    {"suffix": ("*", "*", "*", "*", "*")},
    {"prefix": ("users",), "suffix": ("prefs",), "max_depth": 2},
    {"max_depth": 1},
    {"max_depth": 2, "limit": 2, "offset": 1},
]


@pytest.mark.parametrize("ask", LISTINGS)
async def test_listing_namespaces_is_langgraphs(stores: Stores, ask: dict[str, Any]) -> None:
    store = await _keel(stores)
    oracle = InMemoryStore()
    view = for_org(store, "acme")
    for ns in NAMESPACES:
        await view.aput(ns, "k", {})
        await oracle.aput(ns, "k", {})
        await for_org(store, "globex").aput(("globex", *ns), "k", {})
    assert await view.alist_namespaces(**ask) == await oracle.alist_namespaces(**ask)


def test_a_runs_organisation() -> None:
    user = {"identity": "ann", "org": "acme"}
    kwargs = {"config": {"configurable": {"langgraph_auth_user": user}}}
    assert run_org({"org": "globex", "kwargs": kwargs}) == "globex"  # the column first
    assert run_org({"org": None, "kwargs": kwargs}) == "acme"
    assert run_org({"org": None, "kwargs": {"config": {"configurable": {}}}}) is None
    assert run_org({"kwargs": {}}) is None


async def test_stores_for_users_and_runs(stores: Stores) -> None:
    store = await _keel(stores)
    run = {"org": "acme", "kwargs": {}}
    assert for_run(store, run, orgs=False) is store
    assert for_run(store, run, orgs=True) is for_org(store, "acme")
    assert for_user(store, None, orgs=False) is store


# ------------------------------------------------------------------------ filters


async def test_and_or_contains_filters(stores: Stores) -> None:
    store: BaseStore = await _keel(stores)
    ns = unique_ns()
    rows = {
        "a": {"color": "red", "tags": ["x", "y"], "n": 1},
        "b": {"color": "red", "tags": ["y"], "n": 2},
        "c": {"color": "blue", "tags": ["x"], "n": 3},
        "d": {"color": "blue", "tags": "x", "n": 4},
    }
    for key, value in rows.items():
        await store.aput(ns, key, value)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"tags": {"$contains": "x"}}, {"a", "c"}),
        ({"tags": {"$contains": ["x", "y"]}}, {"a"}),
        ({"$and": [{"color": "red"}, {"tags": {"$contains": "x"}}]}, {"a"}),
        ({"$or": [{"color": "blue"}, {"n": {"$lt": 2}}]}, {"a", "c", "d"}),
        ({"$and": [{"$or": [{"n": 1}, {"n": 4}]}, {"color": "blue"}]}, {"d"}),
        ({"$and": [{"n": {"$gte": 2}}], "color": "red"}, {"b"}),
    ]
    for filt, want in cases:
        found = await store.asearch(ns, filter=filt)
        assert {i.key for i in found} == want, filt
        semantic = await store.asearch(ns, query="red blue", filter=filt, limit=10)
        assert {i.key for i in semantic} == want, filt
    deep: dict[str, Any] = {"n": 1}
    for _ in range(5):
        deep = {"$and": [deep]}
    bad_filters: list[dict[str, Any]] = [{"$and": []}, {"$or": {"n": 1}}, {"$and": ["x"]}, deep]
    for bad in bad_filters:
        with pytest.raises(InvalidInput):
            await store.asearch(ns, filter=bad)
