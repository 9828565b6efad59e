"""The long-term store through the SDK, on a real server (default store settings: semantic search
with Keel's embedded model, no default TTL): every `/store` endpoint, and its refusals."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Client, SyncClient

DOCS = {
    "peanuts": "I am allergic to peanuts",
    "lisbon": "My flight to Lisbon leaves on Friday morning",
    "cat": "My cat is called Miso",
    "rust": "My favourite programming language is Rust",
}


def new_ns(*labels: str) -> list[str]:
    return ["e2e", uuid.uuid4().hex, *labels]


def keys(found: Any) -> list[str]:
    return [i["key"] for i in found["items"]]


async def put_docs(client: Client, ns: list[str]) -> None:
    for key, text in DOCS.items():
        await client.store.put_item(ns, key, {"text": text})


# --------------------------------------------------------------------------- items


async def test_put_get_search_delete(client: Client) -> None:
    ns = ["users", uuid.uuid4().hex, "prefs"]
    await client.store.put_item(ns, "theme", {"color": "dark", "size": 3})
    await client.store.put_item(ns, "lang", {"code": "fr", "size": 1})
    item = await client.store.get_item(ns, "theme")
    assert item is not None and item["value"] == {"color": "dark", "size": 3}
    assert item["namespace"] == ns and item["key"] == "theme"
    found = await client.store.search_items(ns[:2], filter={"size": {"$gt": 2}})
    assert keys(found) == ["theme"]
    spaces = await client.store.list_namespaces(prefix=ns[:2])
    assert spaces["namespaces"] == [ns]
    await client.store.delete_item(ns, "theme")
    assert await client.store.get_item(ns, "theme") is None


async def test_item_shape_and_timestamps(client: Client) -> None:
    ns = new_ns("ü 中文", "50%_*")
    value = {"text": "héllo ✓", "n": 1.5, "ok": True, "none": None, "list": [1, {"a": []}]}
    await client.store.put_item(ns, "key with spaces.and.dots", value)
    first = await client.store.get_item(ns, "key with spaces.and.dots")
    assert first["value"] == value and first["namespace"] == ns
    created = datetime.fromisoformat(first["created_at"])
    assert created.tzinfo is not None and first["created_at"] <= first["updated_at"]
    await asyncio.sleep(0.01)
    await client.store.put_item(ns, "key with spaces.and.dots", {"text": "new"})
    second = await client.store.get_item(ns, "key with spaces.and.dots")
    assert second["value"] == {"text": "new"}
    assert second["created_at"] == first["created_at"]
    assert datetime.fromisoformat(second["updated_at"]) > datetime.fromisoformat(
        first["updated_at"]
    )


async def test_missing_items_are_null_and_deletes_are_idempotent(
    client: Client, http: httpx.AsyncClient
) -> None:
    ns = new_ns()
    assert await client.store.get_item(ns, "nope") is None
    res = await http.get("/store/items", params={"namespace": ".".join(ns), "key": "nope"})
    assert res.status_code == 200 and res.json() is None
    await client.store.put_item(ns, "k", {"v": 1})
    await client.store.delete_item(ns, "k")
    await client.store.delete_item(ns, "k")
    res = await http.request("DELETE", "/store/items", json={"namespace": ns, "key": "never"})
    assert res.status_code == 204
    assert await client.store.get_item(ns, "k") is None
    assert (await client.store.list_namespaces(prefix=ns))["namespaces"] == []


async def test_sync_client(sync_client: SyncClient) -> None:
    ns = new_ns()
    sync_client.store.put_item(ns, "k", {"text": "synchronous memory"})
    assert sync_client.store.get_item(ns, "k")["value"] == {"text": "synchronous memory"}
    assert keys(sync_client.store.search_items(ns, query="memory")) == ["k"]
    assert sync_client.store.list_namespaces(prefix=ns)["namespaces"] == [ns]
    sync_client.store.delete_item(ns, "k")
    assert sync_client.store.get_item(ns, "k") is None


# --------------------------------------------------------------------------- search


async def test_search_prefix_filters_and_pages(client: Client) -> None:
    ns = new_ns("items")
    for i in range(12):
        await client.store.put_item(ns, f"k{i:02}", {"n": i, "even": i % 2 == 0, "tag": "t"})
    await client.store.put_item([*ns[:2], "itemsX"], "sibling", {"n": 5})
    await client.store.put_item([*ns, "deeper"], "child", {"n": 100})
    assert len(keys(await client.store.search_items(ns, limit=100))) == 13
    found = await client.store.search_items(ns, filter={"n": {"$gte": 3, "$lt": 6}}, limit=100)
    assert sorted(keys(found)) == ["k03", "k04", "k05"]
    found = await client.store.search_items(ns, filter={"even": True, "n": {"$ne": 4}})
    assert sorted(keys(found)) == ["k00", "k02", "k06", "k08", "k10"]
    found = await client.store.search_items(ns, filter={"n": {"$lte": 1}, "tag": "t"})
    assert sorted(keys(found)) == ["k00", "k01"]
    pages = [keys(await client.store.search_items(ns, limit=5, offset=o)) for o in (0, 5, 10)]
    assert [len(p) for p in pages] == [5, 5, 3]
    assert len({k for p in pages for k in p}) == 13
    assert keys(await client.store.search_items(ns, limit=0)) == []


async def test_semantic_search_is_on_by_default(client: Client) -> None:
    ns = new_ns("memories")
    await put_docs(client, ns)
    found = await client.store.search_items(ns, query="which food am I allergic to?", limit=4)
    assert keys(found)[0] == "peanuts"
    scores = [i["score"] for i in found["items"]]
    assert all(isinstance(s, float) for s in scores), scores
    assert scores == sorted(scores, reverse=True)
    found = await client.store.search_items(ns, query="when is my flight?", limit=1)
    assert keys(found) == ["lisbon"]
    plain = await client.store.search_items(ns)
    assert all(i.get("score") is None for i in plain["items"])


async def test_semantic_search_with_filter_offset_and_prefix(client: Client) -> None:
    ns = new_ns()
    await put_docs(client, [*ns, "a"])
    await client.store.put_item([*ns, "b"], "other", {"text": "I am allergic to peanuts"})
    await client.store.put_item([*ns, "a"], "tagged", {"text": "peanuts", "kind": "x"})
    query = "allergic to peanuts"
    found = await client.store.search_items([*ns, "a"], query=query, filter={"kind": "x"})
    assert keys(found) == ["tagged"]
    first = keys(await client.store.search_items([*ns, "a"], query=query, limit=2))
    rest = keys(await client.store.search_items([*ns, "a"], query=query, limit=10, offset=2))
    assert "other" not in first + rest
    assert sorted(first + rest) == sorted([*DOCS, "tagged"])


async def test_put_index_variants(client: Client) -> None:
    ns = new_ns()
    await client.store.put_item(
        ns, "by_text", {"text": "penguins in Antarctica", "x": "y"}, index=["text"]
    )
    await client.store.put_item(ns, "missing", {"text": "penguins"}, index=["missing.field"])
    await client.store.put_item(ns, "off", {"text": "penguins in Antarctica"}, index=False)
    found = await client.store.search_items(ns, query="penguins in Antarctica", limit=10)
    by_key = {i["key"]: i.get("score") for i in found["items"]}
    assert keys(found)[0] == "by_text" and isinstance(by_key["by_text"], float)
    assert by_key.get("off") is None and by_key.get("missing") is None
    assert (await client.store.get_item(ns, "off"))["value"]["text"] == "penguins in Antarctica"


# --------------------------------------------------------------------------- TTL


async def _ttl_scenario(client: Client, minutes: float) -> list[str] | None:
    """Items with a TTL of `minutes`, some read (refreshing or not) half-way through it; the keys
    found just after the unrefreshed ones expired. None when this machine was too slow to tell:
    a read landed after the expiry it was to refresh, or the check after a refreshed expiry
    (the server stamps expiries with the same clock as `time.time()` here)."""
    ttl = minutes * 60
    ns = new_ns()
    put_start = time.time()
    await client.store.put_item(ns, "short", {"v": 1}, ttl=minutes * 0.4)
    for key in ("get_true", "get_false", "search_true", "search_false", "get_default"):
        await client.store.put_item(ns, key, {"key": key}, ttl=minutes)
    await client.store.put_item(ns, "forever", {"v": 1})
    put_done = time.time()
    await asyncio.sleep(ttl / 2)
    refresh_start = time.time()
    assert await client.store.get_item(ns, "short") is None
    await client.store.get_item(ns, "get_true", refresh_ttl=True)
    await client.store.get_item(ns, "get_false", refresh_ttl=False)
    await client.store.get_item(ns, "get_default")
    await client.store.search_items(ns, filter={"key": "search_true"}, refresh_ttl=True)
    await client.store.search_items(ns, filter={"key": "search_false"}, refresh_ttl=False)
    refresh_done = time.time()
    await asyncio.sleep(max(put_done + ttl - time.time(), 0.0) + 0.05)  # unrefreshed: expired
    found = await client.store.search_items(ns, limit=100)
    if refresh_done >= put_start + ttl or time.time() >= refresh_start + ttl:
        return None
    return sorted(keys(found))


async def test_ttl_expiry_and_refresh(client: Client) -> None:
    minutes = 0.025  # 1.5 s; doubled for each try a loaded machine was too slow for
    for _ in range(5):
        found = await _ttl_scenario(client, minutes)
        if found is not None:
            assert found == ["forever", "get_default", "get_true", "search_true"]
            return
        minutes *= 2
    raise AssertionError("every try was too slow to tell a refreshed TTL from an expired one")


# --------------------------------------------------------------------------- namespaces


async def test_list_namespaces(client: Client) -> None:
    r = new_ns()
    for labels in (["a", "b", "c"], ["a", "b", "d"], ["a", "e"], ["ab"], ["f", "b", "c"]):
        await client.store.put_item([*r, *labels], "k", {"v": 1})

    async def spaces(**kwargs: Any) -> list[list[str]]:
        return list((await client.store.list_namespaces(**kwargs))["namespaces"])

    every = [
        [*r, "a", "b", "c"],
        [*r, "a", "b", "d"],
        [*r, "a", "e"],
        [*r, "ab"],
        [*r, "f", "b", "c"],
    ]
    assert await spaces(prefix=r) == every
    assert await spaces(prefix=[*r, "a"]) == every[:3]
    assert await spaces(prefix=r, suffix=["c"]) == [every[0], every[4]]
    assert await spaces(prefix=[*r, "*", "b"]) == [every[0], every[1], every[4]]
    assert await spaces(prefix=r, max_depth=3) == [[*r, "a"], [*r, "ab"], [*r, "f"]]
    assert await spaces(prefix=r, limit=2, offset=1) == every[1:3]
    assert await spaces(prefix=r, offset=5) == []


# --------------------------------------------------------------------------- refusals


async def status_of(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> int:
    """The response's status (a 4xx must carry `detail`). One connection per request: after a
    500 the server closes the connection, which would fail the next request instead."""
    res = await http.request(method, path, headers={"connection": "close"}, **kwargs)
    if 400 <= res.status_code < 500:
        assert "detail" in res.json(), res.text
    return res.status_code


BAD_NAMESPACES: list[Any] = [
    ["a.b"],
    [""],
    ["a", ""],
    [],
    ["a", 1],
    [None],
    "a",
    ["langgraph", "x"],
    ["nul\x00byte"],
]


async def test_bad_namespaces_are_422(http: httpx.AsyncClient) -> None:
    wrong = []
    for ns in BAD_NAMESPACES:
        body = {"namespace": ns, "key": "k", "value": {}}
        status = await status_of(http, "PUT", "/store/items", json=body)
        if status != 422:
            wrong.append(f"PUT {ns!r}: {status}")
    for ns in (["a.b"], ["a", 1], "a", ["nul\x00byte"]):
        search = await status_of(http, "POST", "/store/items/search", json={"namespace_prefix": ns})
        listing = await status_of(http, "POST", "/store/namespaces", json={"prefix": ns})
        delete = await status_of(http, "DELETE", "/store/items", json={"namespace": ns, "key": "k"})
        if (search, listing, delete) != (422, 422, 422):
            wrong.append(f"{ns!r}: search {search}, namespaces {listing}, delete {delete}")
    for dotted in ("a..b", "a.", "nul\x00byte"):
        status = await status_of(
            http, "GET", "/store/items", params={"namespace": dotted, "key": "k"}
        )
        if status != 422:
            wrong.append(f"GET namespace={dotted!r}: {status}")
    assert not wrong, wrong


async def test_get_without_key_is_400(http: httpx.AsyncClient) -> None:
    res = await http.get("/store/items", params={"namespace": "a.b"})
    assert res.status_code == 400 and "Key is required" in res.text


async def test_bad_put_bodies_are_422_and_store_nothing(
    client: Client, http: httpx.AsyncClient
) -> None:
    ns = new_ns()
    bodies: list[dict[str, Any]] = [
        {"namespace": ns, "key": "k", "value": [1]},
        {"namespace": ns, "key": "k", "value": "text"},
        {"namespace": ns, "key": "k", "value": None},
        {"namespace": ns, "key": "k"},
        {"namespace": ns, "value": {}},
        {"namespace": ns, "key": 5, "value": {}},
        {"namespace": ns, "key": "k", "value": {}, "ttl": -1},
        {"namespace": ns, "key": "k", "value": {}, "ttl": "soon"},
        {"namespace": ns, "key": "k", "value": {}, "index": "text"},
        {"namespace": ns, "key": "k", "value": {}, "index": True},
    ]
    wrong = []
    for body in bodies:
        status = await status_of(http, "PUT", "/store/items", json=body)
        if status != 422:
            wrong.append(f"{body}: {status}")
    assert not wrong, wrong
    assert (await client.store.list_namespaces(prefix=ns))["namespaces"] == []


async def test_bad_search_and_list_bodies_are_422(http: httpx.AsyncClient) -> None:
    ns = new_ns()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/store/items/search", {"namespace_prefix": ns, "limit": -1}),
        ("/store/items/search", {"namespace_prefix": ns, "limit": 1_000_000}),
        ("/store/items/search", {"namespace_prefix": ns, "offset": -1}),
        ("/store/items/search", {"namespace_prefix": ns, "filter": "x"}),
        ("/store/items/search", {"namespace_prefix": ns, "filter": {"n": {"$regex": "a"}}}),
        ("/store/items/search", {"namespace_prefix": ns, "filter": {"n": {"$gt": [1]}}}),
        ("/store/items/search", {"namespace_prefix": ns, "query": 5}),
        ("/store/namespaces", {"prefix": ns, "limit": -1}),
        ("/store/namespaces", {"prefix": ns, "limit": 1_000_000}),
        ("/store/namespaces", {"prefix": ns, "offset": -1}),
        ("/store/namespaces", {"prefix": ns, "max_depth": 0}),
        ("/store/namespaces", {"suffix": "x"}),
        ("/store/items", {"namespace": ns}),  # DELETE without key
    ]
    wrong = []
    for path, body in cases:
        method = "DELETE" if path == "/store/items" else "POST"
        status = await status_of(http, method, path, json=body)
        if status != 422:
            wrong.append(f"{path} {body}: {status}")
    assert not wrong, wrong


async def test_unknown_body_fields_are_ignored(client: Client, http: httpx.AsyncClient) -> None:
    """§1.1: the SDKs add optional fields over time; unknown fields are ignored, not refused."""
    ns = new_ns()
    body = {"namespace": ns, "key": "k", "value": {"v": 1}, "future_field": True}
    assert (await http.put("/store/items", json=body)).status_code == 204
    res = await http.post("/store/items/search", json={"namespace_prefix": ns, "future": 1})
    assert res.status_code == 200 and [i["key"] for i in res.json()["items"]] == ["k"]
    res = await http.post("/store/namespaces", json={"prefix": ns, "future": 1})
    assert res.status_code == 200 and res.json()["namespaces"] == [ns]


async def test_sdk_refuses_dotted_labels_client_side(client: Client) -> None:
    with pytest.raises(ValueError, match="period"):
        await client.store.put_item(["a.b"], "k", {"v": 1})


async def test_a_failing_request_does_not_fail_concurrent_ones(
    client: Client, http: httpx.AsyncClient
) -> None:
    """Store operations from concurrent requests share batches: a request that is refused, or
    that the database cannot store (a NUL character: PostgreSQL's JSONB refuses it), fails
    alone, with a 4xx, never a 500."""
    ns = new_ns()
    good = [client.store.put_item(ns, f"k{i}", {"n": i}) for i in range(20)]
    nul = {"namespace": ns, "key": "nul", "value": {"text": "a\x00b"}}
    bad_filter = {"namespace_prefix": ns, "filter": {"n": {"$regex": "x"}}}
    others = [http.put("/store/items", json=nul)]
    others += [http.post("/store/items/search", json=bad_filter) for _ in range(3)]
    results = await asyncio.gather(*good, *others, return_exceptions=True)
    assert all(r is None for r in results[:20]), results[:20]
    statuses = [r.status_code if isinstance(r, httpx.Response) else r for r in results[20:]]
    assert statuses[0] in (204, 422) and statuses[1:] == [422, 422, 422], statuses
    assert len(keys(await client.store.search_items(ns, limit=100))) == 20 + (statuses[0] == 204)
