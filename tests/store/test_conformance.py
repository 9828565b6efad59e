"""One conformance suite for the long-term memory store, on LangGraph's `InMemoryStore` (the
oracle, "memory") and on Keel's store over SQLite and PostgreSQL.

Where Keel deliberately differs from `InMemoryStore`, the test says so and checks each side:
- search without a query: Keel returns the most recently updated items first (LangGraph's SQL
  stores' order), `InMemoryStore` returns them in insertion order;
- a batch runs as if its operations ran one after another (a get after a put of the same key
  sees it); LangGraph's stores run a batch's reads before its writes;
- TTL: `InMemoryStore` refuses `ttl`, so TTL tests run on Keel only;
- `InMemoryStore` keeps a namespace listed once its items are deleted (or after a get in it),
  rewrites `created_at` on overwrite, and keeps the vectors of fields an overwrite dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)

from keel.errors import InvalidInput
from keel.settings import IndexSettings, StoreSettings, TTLSettings
from keel.store import KeelStore
from tests.store import fake_embed
from tests.store.conftest import Stores, unique_ns
from tests.support.clock import FakeClock

Namespace = tuple[str, ...]
REJECTED = (InvalidNamespaceError, InvalidInput)
FAKE_EMBED_FILE = Path(fake_embed.__file__).resolve()
TTL_0_6S = 0.01  # a TTL of 0.6 s, in minutes


@pytest.fixture
async def store(stores: Stores) -> BaseStore:
    """A store of the module's backend embedding the whole value with the fake embedding."""
    return await stores.open()


def keys(items: Sequence[Any]) -> list[str]:
    return [i.key for i in items]


def score_list(items: list[SearchItem]) -> list[float]:
    """The items' scores; each must be a finite float."""
    scores = [i.score for i in items]
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores), scores
    return [s for s in scores if s is not None]


async def put_all(store: BaseStore, ns: Namespace, values: dict[str, dict[str, Any]]) -> None:
    for key, value in values.items():
        await store.aput(ns, key, value)


async def found_keys(store: BaseStore, prefix: Namespace, **kwargs: Any) -> set[str]:
    return set(keys(await store.asearch(prefix, limit=1000, **kwargs)))


async def texts(store: BaseStore, ns: Namespace, words: list[str]) -> None:
    for word in words:
        await store.aput(ns, word.replace(" ", "_"), {"text": word})


# --------------------------------------------------------------------------- items


async def test_put_get_roundtrip_keeps_every_json_type(store: BaseStore) -> None:
    ns = unique_ns("users", "ü 中文")
    value = {
        "text": "héllo ✓ 中文 🚀 \"quoted\" 'single' \\ back",
        "int": 42,
        "negative": -7,
        "float": 3.25,
        "big": 2**53,
        "yes": True,
        "no": False,
        "nothing": None,
        "list": [1, "two", None, {"x": []}, [True]],
        "nested": {"a": {"b": {"c": [1.5, {"d": None}]}}},
        "empty_dict": {},
        "empty_list": [],
    }
    await store.aput(ns, "key.with dots/and spaces %_*", value)
    item = await store.aget(ns, "key.with dots/and spaces %_*")
    assert item is not None
    assert item.value == value
    assert item.namespace == ns and item.key == "key.with dots/and spaces %_*"


async def test_nul_characters_round_trip_or_are_refused(store: BaseStore) -> None:
    """LangGraph checks namespaces for NUL, not keys or values; PostgreSQL's text and JSONB
    cannot hold one. Either the item round-trips, or the put is refused as invalid input."""
    ns = unique_ns()
    for key, value in (("text", {"text": "a\x00b"}), ("nul\x00key", {"v": 1})):
        try:
            await store.aput(ns, key, value)
        except InvalidInput:
            continue
        item = await store.aget(ns, key)
        assert item is not None and item.value == value and item.key == key
    await store.aput(ns, "after", {"v": 1})  # the store still works
    assert "after" in await found_keys(store, ns)


async def test_timestamps_created_kept_updated_moves(stores: Stores, store: BaseStore) -> None:
    ns = unique_ns()
    before = datetime.now(UTC)
    await store.aput(ns, "k", {"v": 1})
    first = await store.aget(ns, "k")
    assert first is not None and first.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= first.created_at <= first.updated_at
    assert first.updated_at <= datetime.now(UTC) + timedelta(seconds=1)
    await asyncio.sleep(0.01)
    await store.aput(ns, "k", {"v": 2})
    second = await store.aget(ns, "k")
    assert second is not None and second.value == {"v": 2}
    assert second.updated_at > first.updated_at
    if stores.keel:  # LangGraph's SQL stores keep created_at; InMemoryStore rewrites it.
        assert second.created_at == first.created_at


async def test_overwrite_replaces_the_whole_value(store: BaseStore) -> None:
    ns = unique_ns()
    await store.aput(ns, "k", {"a": 1, "b": {"c": 2}})
    await store.aput(ns, "k", {"b": {"d": 3}})
    item = await store.aget(ns, "k")
    assert item is not None and item.value == {"b": {"d": 3}}


async def test_delete_and_missing_items(store: BaseStore) -> None:
    ns = unique_ns("a")
    await store.aput(ns, "k", {"v": 1})
    await store.adelete(ns, "k")
    assert await store.aget(ns, "k") is None
    assert await found_keys(store, ns) == set()
    await store.adelete(ns, "k")  # deleting again is fine
    await store.adelete(ns, "never-existed")
    assert await store.aget(ns, "never-existed") is None
    assert await store.aget(unique_ns("no", "such", "namespace"), "k") is None


async def test_same_key_in_different_namespaces_is_independent(store: BaseStore) -> None:
    root = unique_ns()
    spaces = [root, (*root, "a"), (*root, "a", "b"), (*root, "b")]
    for i, ns in enumerate(spaces):
        await store.aput(ns, "same", {"i": i})
    await store.adelete((*root, "a"), "same")
    got = [await store.aget(ns, "same") for ns in spaces]
    assert [None if g is None else g.value["i"] for g in got] == [0, None, 2, 3]


@pytest.mark.backends("sqlite", "postgres")
async def test_namespaces_with_deleted_items_disappear(stores: Stores, store: BaseStore) -> None:
    root = unique_ns()
    await store.aput((*root, "gone"), "k", {"v": 1})
    await store.aput((*root, "kept"), "k", {"v": 1})
    await store.adelete((*root, "gone"), "k")
    assert await store.alist_namespaces(prefix=root) == [(*root, "kept")]


# --------------------------------------------------------------------------- batches


async def test_batch_results_come_back_in_order(store: BaseStore) -> None:
    ns = unique_ns("b")
    await store.aput(ns, "a", {"v": "a"})
    results = await store.abatch(
        [
            GetOp(ns, "a"),
            SearchOp(ns, None, 10, 0),
            ListNamespacesOp((MatchCondition("prefix", ns),)),
            PutOp(ns, "c", {"v": "c"}),
            GetOp(ns, "missing"),
        ]
    )
    assert len(results) == 5
    assert isinstance(results[0], Item) and results[0].value == {"v": "a"}
    assert isinstance(results[1], list) and keys(results[1]) == ["a"]
    assert results[2] == [ns]
    assert results[3] is None and results[4] is None
    found = await store.aget(ns, "c")
    assert found is not None and found.value == {"v": "c"}


async def test_batch_last_put_of_a_key_wins(store: BaseStore) -> None:
    ns = unique_ns()
    await store.abatch([PutOp(ns, "k", {"v": i}) for i in range(3)])
    await store.abatch([PutOp(ns, "gone", {"v": 1}), PutOp(ns, "gone", None)])
    await store.abatch([PutOp(ns, "back", None), PutOp(ns, "back", {"v": 1})])
    item = await store.aget(ns, "k")
    assert item is not None and item.value == {"v": 2}
    assert await store.aget(ns, "gone") is None
    assert await store.aget(ns, "back") is not None


async def test_batch_put_then_get(stores: Stores, store: BaseStore) -> None:
    ns = unique_ns()
    results = await store.abatch([PutOp(ns, "k", {"v": 1}), GetOp(ns, "k")])
    if stores.keel:  # Keel: as if one after another.
        got = results[1]
        assert isinstance(got, Item) and got.value == {"v": 1}
    else:  # LangGraph's stores run a batch's reads before its writes.
        assert results[1] is None
    assert await store.aget(ns, "k") is not None


async def test_gathered_put_and_get_in_one_tick(stores: Stores, store: BaseStore) -> None:
    """Concurrent calls from one loop tick are one batch for Keel (AsyncBatchedBaseStore)."""
    ns = unique_ns()
    _, got = await asyncio.gather(store.aput(ns, "k", {"v": 1}), store.aget(ns, "k"))
    if stores.keel:
        assert got is not None and got.value == {"v": 1}
    assert await store.aget(ns, "k") is not None


# --------------------------------------------------------------------------- namespaces


async def test_invalid_namespaces_are_refused_and_nothing_is_stored(store: BaseStore) -> None:
    root = unique_ns()
    bad: list[Any] = [
        (),
        ("",),
        (*root, ""),
        (*root, "a.b"),
        (*root, 1),
        (*root, None),
        (*root, "nul\x00byte"),
        ("langgraph", root[0]),
    ]
    for ns in bad:
        with pytest.raises(REJECTED):
            await store.aput(ns, "k", {"v": 1})
    assert await store.alist_namespaces(prefix=root) == []
    assert await store.alist_namespaces(prefix=("langgraph", root[0])) == []


async def test_dotted_label_in_raw_batch_never_aliases(store: BaseStore) -> None:
    """Ops given straight to `abatch` skip BaseStore's checks; a label "x.y" must still not
    address namespace (..., "x", "y") (LangGraph: `validate_op_namespace`)."""
    root = unique_ns()
    await store.aput((*root, "x", "y"), "real", {"v": "real"})
    with contextlib.suppress(*REJECTED):
        await store.abatch([PutOp((*root, "x.y"), "fake", {"v": "fake"})])
    assert await store.aget((*root, "x", "y"), "fake") is None
    assert (*root, "x", "y") in await store.alist_namespaces(prefix=root)
    try:
        (found,) = await store.abatch([SearchOp((*root, "x.y"), None, 10, 0)])
    except REJECTED:
        return
    assert isinstance(found, list) and "real" not in keys(found), "('x.y',) matched ('x', 'y')"


async def test_search_namespace_prefix(store: BaseStore) -> None:
    r = unique_ns()
    spaces = {
        "ab": (*r, "a", "b"),
        "abc": (*r, "a", "b", "c"),
        "a_bc": (*r, "a", "bc"),
        "a_b-c": (*r, "a", "b-c"),
        "a_b!": (*r, "a", "b!"),
        "a_b0": (*r, "a", "b0"),
        "a_b/c": (*r, "a", "b/c"),
        "a": (*r, "a"),
        "ax": (*r, "ax"),
    }
    for name, ns in spaces.items():
        await store.aput(ns, name, {"v": name})
    assert await found_keys(store, (*r, "a", "b")) == {"ab", "abc"}
    assert await found_keys(store, (*r, "a")) == set(spaces) - {"ax"}
    assert await found_keys(store, r) == set(spaces)
    assert await found_keys(store, (*r, "a", "b", "c", "d")) == set()
    assert await found_keys(store, (*r, "a", "b", "c")) == {"abc"}


async def test_empty_prefix_searches_everything(stores: Stores) -> None:
    store = await stores.open(fresh=True)
    await store.aput(("one",), "k1", {"v": 1})
    await store.aput(("two", "deeper"), "k2", {"v": 2})
    assert await found_keys(store, ()) == {"k1", "k2"}


async def test_like_wildcards_in_labels_are_literal(store: BaseStore) -> None:
    r = unique_ns()
    labels = ["%", "x", "_", "a_b", "axb", "*", "50%", "500", "it's", 'q"q', "back\\slash"]
    for label in labels:
        await store.aput((*r, label), "k", {"label": label})
    for label in labels:
        found = await store.asearch((*r, label), limit=100)
        assert [i.value["label"] for i in found] == [label], label
        if label != "*":  # in list_namespaces, "*" is MatchCondition's wildcard
            assert await store.alist_namespaces(prefix=(*r, label)) == [(*r, label)], label
    assert len(await store.alist_namespaces(prefix=(*r, "*"))) == len(labels)


# --------------------------------------------------------------------------- filters

FILTER_ITEMS: dict[str, dict[str, Any]] = {
    "k1": {
        "color": "red",
        "n": 1,
        "f": 1.5,
        "ok": True,
        "none": None,
        "meta": {"a": 1, "b": {"c": "x"}},
        "tags": ["a", "b"],
    },
    "k2": {
        "color": "blue",
        "n": 2,
        "f": 2.5,
        "ok": False,
        "none": "set",
        "meta": {"a": 2},
        "tags": ["a"],
    },
    "k3": {
        "color": "red",
        "n": 3,
        "f": 3.5,
        "ok": True,
        "none": None,
        "meta": {"a": 1, "b": {"c": "y"}},
        "tags": ["b", "a"],
    },
    "k4": {
        "color": "green",
        "n": 4,
        "f": 4.5,
        "ok": False,
        "none": "set",
        "meta": {"a": 3},
        "tags": ["a", "b", "c"],
    },
    "k5": {"color": "red", "n": 5, "f": 5.5, "ok": True, "none": None, "meta": {}, "tags": []},
}
FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"color": "red"}, {"k1", "k3", "k5"}),
    ({"n": 2}, {"k2"}),
    ({"f": 2.5}, {"k2"}),
    ({"ok": True}, {"k1", "k3", "k5"}),
    ({"ok": False}, {"k2", "k4"}),
    ({"none": None}, {"k1", "k3", "k5"}),
    ({"meta": {"a": 1}}, {"k1", "k3"}),
    ({"meta": {"b": {"c": "x"}}}, {"k1"}),
    ({"tags": ["a", "b"]}, {"k1"}),
    ({"tags": []}, {"k5"}),
    ({"color": "red", "n": 3}, {"k3"}),
    ({"color": "red", "ok": False}, set()),
    ({"missing": "x"}, set()),
    ({"color": "purple"}, set()),
    ({"n": {"$eq": 2}}, {"k2"}),
    ({"n": {"$ne": 2}}, {"k1", "k3", "k4", "k5"}),
    ({"n": {"$gt": 2}}, {"k3", "k4", "k5"}),
    ({"n": {"$gte": 2}}, {"k2", "k3", "k4", "k5"}),
    ({"n": {"$lt": 2}}, {"k1"}),
    ({"n": {"$lte": 2}}, {"k1", "k2"}),
    ({"n": {"$gte": 2, "$lt": 5}}, {"k2", "k3", "k4"}),
    ({"n": {"$gt": 1.5}}, {"k2", "k3", "k4", "k5"}),
    ({"f": {"$gt": 2.5, "$lte": 4.5}}, {"k3", "k4"}),
    ({"color": "red", "n": {"$gt": 1}}, {"k3", "k5"}),
    ({"color": {"$ne": "red"}}, {"k2", "k4"}),
    ({"color": {"$eq": "red"}, "n": {"$lt": 5}}, {"k1", "k3"}),
]


async def test_filters(store: BaseStore) -> None:
    ns = unique_ns("filters")
    await put_all(store, ns, FILTER_ITEMS)
    wrong = []
    for filt, want in FILTER_CASES:
        got = await found_keys(store, ns, filter=filt)
        if got != want:
            wrong.append(f"{filt}: got {sorted(got)}, want {sorted(want)}")
    assert not wrong, "\n".join(wrong)


async def test_pagination_covers_everything_once(store: BaseStore) -> None:
    ns = unique_ns("pages")
    await put_all(store, ns, {f"k{i:02}": {"i": i, "even": i % 2 == 0} for i in range(25)})
    pages = [keys(await store.asearch(ns, limit=10, offset=o)) for o in (0, 10, 20, 25)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert sorted(k for p in pages for k in p) == [f"k{i:02}" for i in range(25)]
    evens = [
        keys(await store.asearch(ns, filter={"even": True}, limit=5, offset=o)) for o in (0, 5, 10)
    ]
    assert [len(p) for p in evens] == [5, 5, 3]
    assert sorted(k for p in evens for k in p) == [f"k{i:02}" for i in range(0, 25, 2)]
    assert await store.asearch(ns, limit=0) == []


async def test_search_order_without_query(stores: Stores, store: BaseStore) -> None:
    ns = unique_ns()
    for key in ("a", "b", "c"):
        await store.aput(ns, key, {"v": key})
        await asyncio.sleep(0.002)
    await store.aput(ns, "a", {"v": "a2"})
    order = keys(await store.asearch(ns))
    if stores.keel:  # newest update first, like LangGraph's SQL stores
        assert order == ["a", "c", "b"]
    else:  # InMemoryStore: insertion order
        assert order == ["a", "b", "c"]


async def test_search_items_have_no_score_without_query(store: BaseStore) -> None:
    ns = unique_ns()
    await store.aput(ns, "k", {"text": "hello"})
    (item,) = await store.asearch(ns)
    assert item.score is None and item.value == {"text": "hello"}


# --------------------------------------------------------------------------- list namespaces


async def tree(store: BaseStore) -> Namespace:
    r = unique_ns()
    for labels in [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("ab",), ("f", "b", "c"), ("f",)]:
        await store.aput((*r, *labels), "k", {"v": 1})
    return r


async def test_list_namespaces_prefix_suffix_wildcards(store: BaseStore) -> None:
    r = await tree(store)
    every = [
        (*r, "a", "b", "c"),
        (*r, "a", "b", "d"),
        (*r, "a", "e"),
        (*r, "ab"),
        (*r, "f"),
        (*r, "f", "b", "c"),
    ]
    assert await store.alist_namespaces(prefix=r) == every
    assert await store.alist_namespaces(prefix=(*r, "a")) == every[:3]
    assert await store.alist_namespaces(prefix=r, suffix=("c",)) == [every[0], every[5]]
    assert await store.alist_namespaces(prefix=(*r, "*", "b")) == [every[0], every[1], every[5]]
    assert await store.alist_namespaces(prefix=r, suffix=("b", "*")) == [
        every[0],
        every[1],
        every[5],
    ]
    assert await store.alist_namespaces(prefix=(*r, "*", "*", "*")) == [*every[:2], every[5]]
    assert await store.alist_namespaces(prefix=(*r, "zzz")) == []


async def test_list_namespaces_suffix_alone(store: BaseStore) -> None:
    r = unique_ns()
    label = r[0] + "-tail"
    await store.aput((*r, "p", label), "k", {"v": 1})
    await store.aput((*r, "q", label, "z"), "k", {"v": 1})
    assert await store.alist_namespaces(suffix=(label,)) == [(*r, "p", label)]
    assert await store.alist_namespaces(suffix=("*", label)) == [(*r, "p", label)]


async def test_list_namespaces_max_depth_dedupes(store: BaseStore) -> None:
    r = await tree(store)
    assert await store.alist_namespaces(prefix=r, max_depth=2) == [
        (*r, "a"),
        (*r, "ab"),
        (*r, "f"),
    ]
    assert await store.alist_namespaces(prefix=r, max_depth=3) == [
        (*r, "a", "b"),
        (*r, "a", "e"),
        (*r, "ab"),
        (*r, "f"),
        (*r, "f", "b"),
    ]
    assert await store.alist_namespaces(prefix=r, max_depth=1) == [r]
    assert len(await store.alist_namespaces(prefix=r, max_depth=10)) == 6


async def test_list_namespaces_limit_offset(store: BaseStore) -> None:
    r = await tree(store)
    every = await store.alist_namespaces(prefix=r)
    assert every == sorted(every) and len(every) == 6
    assert await store.alist_namespaces(prefix=r, limit=2) == every[:2]
    assert await store.alist_namespaces(prefix=r, limit=2, offset=1) == every[1:3]
    assert await store.alist_namespaces(prefix=r, limit=10, offset=5) == every[5:]
    assert await store.alist_namespaces(prefix=r, offset=6) == []
    assert await store.alist_namespaces(prefix=r, limit=0) == []


# --------------------------------------------------------------------------- TTL (Keel)


@pytest.mark.backends("sqlite", "postgres")
async def test_expired_items_are_invisible_before_a_sweep(
    stores: Stores, fake_clock: FakeClock
) -> None:
    store = await stores.open(fresh=True)
    r = unique_ns()
    await store.aput((*r, "gone"), "old", {"text": "expiring memory"}, ttl=TTL_0_6S)
    await store.aput((*r, "kept"), "new", {"text": "lasting memory"})
    fake_clock.advance(0.8)
    assert await store.aget((*r, "gone"), "old") is None
    assert await found_keys(store, r) == {"new"}
    assert await found_keys(store, r, query="expiring memory") == {"new"}
    assert await store.alist_namespaces(prefix=r) == [(*r, "kept")]
    assert isinstance(store, KeelStore)
    assert await store.sweep() == 1
    assert await store.sweep() == 0
    assert await found_keys(store, r) == {"new"}
    assert await found_keys(store, r, query="expiring memory") == {"new"}


@pytest.mark.backends("sqlite", "postgres")
async def test_reads_refresh_ttl_when_asked(stores: Stores, fake_clock: FakeClock) -> None:
    store = await stores.open()
    ns, alone = unique_ns(), unique_ns()
    ttl = 0.025  # 1.5 s
    for key in ("get_default", "get_true", "get_false", "search_true", "search_false"):
        await store.aput(ns, key, {"key": key}, ttl=ttl)
    await store.aput(alone, "semantic", {"text": "refresh me"}, ttl=ttl)
    fake_clock.advance(0.9)
    await store.aget(ns, "get_default")
    await store.aget(ns, "get_true", refresh_ttl=True)
    await store.aget(ns, "get_false", refresh_ttl=False)
    await store.asearch(ns, filter={"key": "search_true"}, refresh_ttl=True)
    await store.asearch(ns, filter={"key": "search_false"}, refresh_ttl=False)
    await store.asearch(alone, query="refresh me")
    fake_clock.advance(0.9)  # past the first expiry, before the refreshed one
    assert await found_keys(store, ns) == {"get_default", "get_true", "search_true"}
    assert await found_keys(store, alone) == {"semantic"}


@pytest.mark.backends("sqlite", "postgres")
async def test_refresh_on_read_false_setting(stores: Stores, fake_clock: FakeClock) -> None:
    store = await stores.open(ttl=TTLSettings(refresh_on_read=False))
    ns = unique_ns()
    for key in ("default", "forced"):
        await store.aput(ns, key, {"key": key}, ttl=0.025)
    fake_clock.advance(0.9)
    await store.aget(ns, "default")
    await store.asearch(ns, filter={"key": "default"})
    await store.aget(ns, "forced", refresh_ttl=True)
    fake_clock.advance(0.9)
    assert await found_keys(store, ns) == {"forced"}


@pytest.mark.backends("sqlite", "postgres")
async def test_default_ttl_and_explicit_none(stores: Stores, fake_clock: FakeClock) -> None:
    store = await stores.open(ttl=TTLSettings(default_ttl=TTL_0_6S))
    ns = unique_ns()
    await store.aput(ns, "default", {"v": 1})
    await store.aput(ns, "forever", {"v": 1}, ttl=None)
    await store.aput(ns, "longer", {"v": 1}, ttl=1.0)
    await store.aput(ns, "reset", {"v": 1}, ttl=TTL_0_6S)
    await store.aput(ns, "reset", {"v": 2}, ttl=None)  # an overwrite sets the TTL anew
    fake_clock.advance(0.8)
    assert await found_keys(store, ns) == {"forever", "longer", "reset"}
    assert await store.aget(ns, "default") is None


# --------------------------------------------------------------------------- semantic search

DOCS = [
    "apple banana fruit salad",
    "car engine repair manual",
    "dog cat pet food",
    "python programming language tutorial",
    "ocean waves beach holiday",
]


async def test_query_ranks_the_matching_item_first(store: BaseStore) -> None:
    ns = unique_ns("docs")
    await texts(store, ns, DOCS)
    found = await store.asearch(ns, query="a tutorial on python programming", limit=5)
    assert found[0].key == "python_programming_language_tutorial"
    scores = score_list(found)
    assert scores == sorted(scores, reverse=True)


async def test_score_is_cosine_similarity(stores: Stores) -> None:
    store = await stores.open(fields=["text"])
    ns = unique_ns()
    await texts(store, ns, DOCS)
    exact = await store.asearch(ns, query="dog cat pet food", limit=1)
    assert exact[0].key == "dog_cat_pet_food"
    assert exact[0].score is not None and abs(exact[0].score - 1.0) < 1e-4
    half = await score_of(store, ns, "dog cat", "dog_cat_pet_food")  # 2 of 4 words
    assert half is not None and abs(half - math.sqrt(0.5)) < 0.1


async def test_fields_pick_what_is_embedded(stores: Stores) -> None:
    store = await stores.open(fields=["text", "doc.title"])
    ns = unique_ns()
    await store.aput(ns, "by_text", {"text": "alpha bravo", "other": "charlie delta"})
    await store.aput(ns, "by_title", {"doc": {"title": "golf hotel"}, "other": "alpha"})
    await store.aput(ns, "override", {"text": "zulu", "other": "echo foxtrot"}, index=["other"])
    await store.aput(ns, "unindexed", {"text": "india juliet"}, index=False)
    assert (await scored(store, ns, "alpha bravo"))[:1] == ["by_text"]
    assert (await scored(store, ns, "golf hotel"))[:1] == ["by_title"]
    assert (await scored(store, ns, "echo foxtrot"))[:1] == ["override"]
    charlie = await score_of(store, ns, "charlie delta", "by_text")
    assert charlie is not None and charlie < 0.5  # "other" is not an embedded field
    zulu = await score_of(store, ns, "zulu", "override")
    assert zulu is not None and zulu < 0.5  # index= replaced the configured fields
    assert "unindexed" not in await scored(store, ns, "india juliet")


async def scored(store: BaseStore, ns: Namespace, query: str) -> list[str]:
    """Keys of the items the query scored, best first."""
    return [i.key for i in await store.asearch(ns, query=query, limit=50) if i.score is not None]


async def score_of(store: BaseStore, ns: Namespace, query: str, key: str) -> float | None:
    found = {i.key: i.score for i in await store.asearch(ns, query=query, limit=50)}
    assert key in found, (key, found)
    return found[key]


async def test_lists_and_multiple_fields_max_pool(stores: Stores) -> None:
    store = await stores.open(fields=["tags[*]", "title"])
    ns = unique_ns()
    await store.aput(ns, "k", {"tags": ["kilo lima", "mike november"], "title": "oscar papa"})
    await store.aput(ns, "other", {"tags": ["quebec"], "title": "romeo"})
    for query in ("mike november", "kilo lima", "oscar papa"):
        found = await store.asearch(ns, query=query, limit=10)
        assert keys(found) == ["k", "other"], query  # one result per item
        assert found[0].score is not None and abs(found[0].score - 1.0) < 1e-4


async def test_items_without_vectors_follow_the_scored_ones(stores: Stores) -> None:
    """Both stores fill a short page with unembedded items, score None, after scored ones."""
    store = await stores.open(fields=["text"])
    ns = unique_ns()
    await store.aput(ns, "a", {"text": "sierra tango"})
    await store.aput(ns, "b", {"text": "uniform victor"})
    await store.aput(ns, "no_field", {"note": "nothing to embed"})
    await store.aput(ns, "off", {"text": "sierra tango"}, index=False)
    found = await store.asearch(ns, query="sierra tango", limit=10)
    assert keys(found)[:2] == ["a", "b"]
    assert sorted(keys(found)[2:]) == ["no_field", "off"]
    assert [i.score is None for i in found] == [False, False, True, True]
    assert keys(await store.asearch(ns, query="sierra tango", limit=2)) == ["a", "b"]


async def test_query_with_filter_and_prefix(store: BaseStore) -> None:
    r = unique_ns()
    await store.aput((*r, "a"), "best_wrong_kind", {"text": "whiskey xray", "kind": "x"})
    await store.aput((*r, "b"), "best_wrong_ns", {"text": "whiskey xray", "kind": "y"})
    await store.aput((*r, "a"), "weaker", {"text": "whiskey yankee zulu", "kind": "y"})
    await store.aput((*r, "a", "deep"), "deeper", {"text": "whiskey", "kind": "y"})
    await store.aput((*r, "a"), "unrelated", {"text": "nothing shared", "kind": "z"})
    found = await store.asearch((*r, "a"), query="whiskey xray", filter={"kind": "y"}, limit=10)
    assert set(keys(found)) == {"weaker", "deeper"}
    assert all(i.score is not None for i in found)


async def query_pages(store: BaseStore, ns: Namespace, query: str) -> list[list[SearchItem]]:
    return [await store.asearch(ns, query=query, limit=5, offset=o) for o in (0, 5, 10, 15)]


async def test_query_pages_are_disjoint_and_descending(store: BaseStore) -> None:
    ns = unique_ns()
    for i in range(12):  # "amber" and i filler words: each item a different score
        await store.aput(
            ns, f"k{i:02}", {"text": " ".join(["amber", *(f"w{j}" for j in range(i))])}
        )
    pages = await query_pages(store, ns, "amber")
    assert [len(p) for p in pages] == [5, 5, 2, 0]
    every = [i for p in pages for i in p]
    assert sorted(keys(every)) == [f"k{i:02}" for i in range(12)]
    scores = score_list(every)
    assert scores == sorted(scores, reverse=True)


async def test_query_pages_with_tied_scores_are_disjoint(store: BaseStore) -> None:
    ns = unique_ns()
    for i in range(12):
        await store.aput(ns, f"k{i:02}", {"text": "same words everywhere"})
    pages = await query_pages(store, ns, "same words")
    assert [len(p) for p in pages] == [5, 5, 2, 0]
    assert sorted(keys([i for p in pages for i in p])) == [f"k{i:02}" for i in range(12)]


async def test_overwrite_replaces_vectors(stores: Stores) -> None:
    store = await stores.open(fields=["text"])
    ns = unique_ns()
    await store.aput(ns, "k", {"text": "red apple"})
    await store.aput(ns, "other", {"text": "green tree"})
    await store.aput(ns, "k", {"text": "blue ocean"})
    assert (await scored(store, ns, "blue ocean"))[:1] == ["k"]
    red = await score_of(store, ns, "red apple", "k")
    assert red is not None and red < 0.5
    await store.aput(ns, "k", {"note": "no text any more"})
    if stores.keel:  # InMemoryStore keeps the vectors of fields an overwrite dropped
        assert "k" not in await scored(store, ns, "blue ocean")


async def test_semantic_prefix_excludes_string_siblings(store: BaseStore) -> None:
    r = unique_ns()
    await store.aput((*r, "a"), "in", {"text": "yellow submarine"})
    await store.aput((*r, "a", "deep"), "deeper", {"text": "yellow submarine"})
    for sibling in ("ab", "a-b", "a_", "a b"):
        await store.aput((*r, sibling), sibling, {"text": "yellow submarine"})
    found = await store.asearch((*r, "a"), query="yellow submarine", limit=10)
    assert sorted(keys(found)) == ["deeper", "in"]


async def test_selective_filter_finds_the_least_similar_match(store: BaseStore) -> None:
    """The one item passing the filter ranks last of 300 by similarity: still found."""
    ns = unique_ns()
    await store.abatch(
        [PutOp(ns, f"k{i:03}", {"text": f"alpha {i}", "kind": "a"}) for i in range(299)]
    )
    await store.aput(ns, "odd", {"text": "zebra", "kind": "b"})
    found = await store.asearch(ns, query="alpha", filter={"kind": "b"}, limit=1)
    assert keys(found) == ["odd"] and found[0].score is not None


async def test_delete_then_put_again_is_found_by_its_new_text(store: BaseStore) -> None:
    ns = unique_ns()
    await store.aput(ns, "k", {"text": "first text"})
    await store.adelete(ns, "k")
    await store.aput(ns, "k", {"text": "second text entirely"})
    await store.abatch([PutOp(ns, "j", {"text": "jay"}), PutOp(ns, "j", None)])
    await store.abatch([PutOp(ns, "m", None), PutOp(ns, "m", {"text": "mike"})])
    assert (await scored(store, ns, "second text entirely"))[:1] == ["k"]
    assert (await scored(store, ns, "mike"))[:1] == ["m"]
    assert "j" not in await scored(store, ns, "jay")


async def test_deleted_items_never_come_back_from_semantic_search(store: BaseStore) -> None:
    ns = unique_ns()
    await texts(store, ns, DOCS)
    await store.adelete(ns, "dog_cat_pet_food")
    found = await store.asearch(ns, query="dog cat pet food", limit=10)
    assert "dog_cat_pet_food" not in keys(found) and len(found) == len(DOCS) - 1


async def test_text_embedding_to_zero_does_not_break_ranking(store: BaseStore) -> None:
    ns = unique_ns()
    await store.aput(ns, "punctuation", {"text": "!!! ???"})
    await store.aput(ns, "match", {"text": "hotel india"})
    found = await store.asearch(ns, query="hotel india", limit=10)
    assert keys(found) == ["match", "punctuation"]
    assert all(i.score is not None and math.isfinite(i.score) for i in found), found


@pytest.mark.backends("sqlite", "postgres")
async def test_custom_embed_by_file_path_and_async_function(stores: Stores) -> None:
    path = FAKE_EMBED_FILE
    for embed in (f"{path}:embed", "tests.store.fake_embed:aembed"):
        storage = await stores.open_storage(
            StoreSettings(index=IndexSettings(dims=fake_embed.DIMS, embed=embed)), fresh=True
        )
        ns = unique_ns()
        await texts(storage.store, ns, DOCS)
        found = await storage.store.asearch(ns, query="ocean beach", limit=1)
        assert keys(found) == ["ocean_waves_beach_holiday"], embed
        await storage.close()
        stores.opened.remove(storage)


@pytest.mark.backends("postgres")
async def test_two_processes_share_one_database(stores: Stores) -> None:
    """Two Keel storages on one PostgreSQL database (as two processes would be): each one's
    semantic search sees the other's new, updated and deleted items."""
    url = stores.new_database()
    writer, reader = await stores.open(url=url), await stores.open(url=url)
    ns = unique_ns()
    await texts(writer, ns, DOCS)
    assert keys(await reader.asearch(ns, query="car engine repair", limit=1)) == [
        "car_engine_repair_manual"
    ]
    await writer.aput(ns, "car_engine_repair_manual", {"text": "violin concerto"})
    await writer.adelete(ns, "dog_cat_pet_food")
    await writer.aput(ns, "new", {"text": "quantum physics lecture"})
    assert keys(await reader.asearch(ns, query="violin concerto", limit=1)) == [
        "car_engine_repair_manual"
    ]
    assert keys(await reader.asearch(ns, query="quantum physics", limit=1)) == ["new"]
    found = await reader.asearch(ns, query="dog cat pet food", limit=10)
    assert "dog_cat_pet_food" not in keys(found)
    engine = await score_of(reader, ns, "car engine repair", "car_engine_repair_manual")
    assert engine is not None and engine < 0.5
    await reader.aput(ns, "back", {"text": "reader wrote this"})
    assert keys(await writer.asearch(ns, query="reader wrote this", limit=1)) == ["back"]
    await writer.adelete(ns, "new")  # deleted then put again between two of reader's searches
    await writer.aput(ns, "new", {"text": "second life"})
    assert keys(await reader.asearch(ns, query="second life", limit=1)) == ["new"]


# --------------------------------------------------------------------------- threads, load


async def test_sync_api_from_a_thread(store: BaseStore) -> None:
    ns = unique_ns()
    await asyncio.to_thread(store.put, ns, "k", {"text": "from a thread"})
    item = await asyncio.to_thread(store.get, ns, "k")
    assert item is not None and item.value == {"text": "from a thread"}
    found = await asyncio.to_thread(lambda: store.search(ns, query="thread", limit=5))
    assert keys(found) == ["k"]
    assert await asyncio.to_thread(lambda: store.list_namespaces(prefix=ns)) == [ns]
    await asyncio.to_thread(store.delete, ns, "k")
    assert await store.aget(ns, "k") is None


async def test_concurrent_puts_and_searches(store: BaseStore) -> None:
    ns = unique_ns()
    puts = [store.aput(ns, f"k{i}", {"text": f"item number {i}", "i": i}) for i in range(50)]
    searches = [store.asearch(ns, query=f"item number {i}", limit=5) for i in range(50)]
    await asyncio.gather(*puts, *searches)
    assert await found_keys(store, ns) == {f"k{i}" for i in range(50)}
    top = await store.asearch(ns, query="item number 17", limit=1)
    assert keys(top) == ["k17"]
