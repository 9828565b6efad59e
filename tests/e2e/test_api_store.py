"""The long-term store through the SDK: items, search, namespaces, and honest refusals."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from tests.e2e.helpers import Client


async def test_put_get_search_delete(client: Client) -> None:
    ns = ["users", uuid.uuid4().hex, "prefs"]
    await client.store.put_item(ns, "theme", {"color": "dark", "size": 3})
    await client.store.put_item(ns, "lang", {"code": "fr", "size": 1})
    item = await client.store.get_item(ns, "theme")
    assert item is not None and item["value"] == {"color": "dark", "size": 3}
    assert item["namespace"] == ns and item["key"] == "theme"
    found = await client.store.search_items(ns[:2], filter={"size": {"$gt": 2}})
    assert [i["key"] for i in found["items"]] == ["theme"]
    spaces = await client.store.list_namespaces(prefix=ns[:2])
    assert spaces["namespaces"] == [ns]
    await client.store.delete_item(ns, "theme")
    assert await client.store.get_item(ns, "theme") is None


async def test_bad_namespace_is_422(http: httpx.AsyncClient) -> None:
    for ns in (["a.b"], [""], []):
        res = await http.put("/store/items", json={"namespace": ns, "key": "k", "value": {}})
        assert res.status_code == 422, ns


async def test_semantic_features_are_refused_not_ignored(client: Client) -> None:
    ns = ["docs", uuid.uuid4().hex]
    with pytest.raises(UnprocessableEntityError, match="query"):
        await client.store.search_items(ns, query="something similar")
    with pytest.raises(UnprocessableEntityError, match="index"):
        await client.store.put_item(ns, "k", {"text": "hello"}, index=["text"])
    assert await client.store.get_item(ns, "k") is None
    await client.store.put_item(ns, "k", {"text": "hello"}, index=False)
    assert (await client.store.get_item(ns, "k")) is not None
