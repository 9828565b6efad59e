"""Assistants through the official SDK: CRUD, search, count, versions, graph, schemas, subgraphs."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.conftest import GRAPHS_CONFIG
from tests.e2e.helpers import Client, SyncClient, system_id

# Every graph the test server registers gets a system assistant.
GRAPHS = set(json.loads(GRAPHS_CONFIG.read_text())["graphs"])


async def test_system_assistants_have_uuid5_ids(client: Client) -> None:
    # The documented example value pins the namespace.
    assert system_id("agent") == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    system = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    by_graph = {a["graph_id"]: a for a in system}
    assert set(by_graph) == GRAPHS
    for graph_id, assistant in by_graph.items():
        assert assistant["assistant_id"] == system_id(graph_id)
        assert assistant["version"] == 1
        assert assistant["name"] == graph_id
        assert assistant["config"] == {}
    found = await client.assistants.search(graph_id="pipeline", metadata={"created_by": "system"})
    assert [a["assistant_id"] for a in found] == [system_id("pipeline")]
    fetched = await client.assistants.get(system_id("approval"))
    assert fetched["graph_id"] == "approval"


async def test_create_get_update_delete(client: Client) -> None:
    created = await client.assistants.create(
        "pipeline",
        config={"tags": ["t1"]},
        metadata={"team": "a", "keep": 1},
        name="Writer",
        description="writes things",
    )
    aid = created["assistant_id"]
    assert uuid.UUID(aid).version == 4
    assert (created["graph_id"], created["name"], created["version"]) == ("pipeline", "Writer", 1)
    assert created["description"] == "writes things"
    assert await client.assistants.get(aid) == created

    updated = await client.assistants.update(aid, metadata={"team": "b"}, name="Writer 2")
    assert updated["version"] == 2
    assert updated["metadata"] == {"team": "b", "keep": 1}  # merged
    assert updated["name"] == "Writer 2"
    assert updated["config"] == {"tags": ["t1"]}  # untouched
    again = await client.assistants.update(aid, config={"tags": ["t2"]})
    assert again["version"] == 3 and again["config"] == {"tags": ["t2"]}
    assert (await client.assistants.get(aid))["version"] == 3

    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.update(aid, name="ghost")


async def test_if_exists_and_explicit_id(client: Client) -> None:
    aid = str(uuid.uuid4())
    first = await client.assistants.create("approval", assistant_id=aid, name="one")
    assert first["assistant_id"] == aid
    with pytest.raises(ConflictError):
        await client.assistants.create("approval", assistant_id=aid, name="two")
    same = await client.assistants.create(
        "approval", assistant_id=aid, name="three", if_exists="do_nothing"
    )
    assert same["name"] == "one" and same["version"] == 1
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph", name="x")


async def test_versions_and_set_latest(client: Client) -> None:
    a = await client.assistants.create("pipeline", metadata={"v": 1}, name="v1")
    aid = a["assistant_id"]
    await client.assistants.update(aid, metadata={"v": 2}, name="v2")
    await client.assistants.update(aid, metadata={"v": 3}, name="v3", config={"tags": ["x"]})
    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["v3", "v2", "v1"]
    assert "updated_at" not in versions[0]
    assert [v["version"] for v in await client.assistants.get_versions(aid, limit=1, offset=1)] == [
        2
    ]
    only_v2 = await client.assistants.get_versions(aid, metadata={"v": 2})
    assert [v["version"] for v in only_v2] == [2]

    restored = await client.assistants.set_latest(aid, 1)
    assert (restored["version"], restored["name"]) == (1, "v1")
    assert restored["metadata"] == {"v": 1} and restored["config"] == {}
    assert (await client.assistants.get(aid))["name"] == "v1"
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 99)
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))


async def test_search_count_paginate(client: Client, http: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    names = ["Alpha Search", "beta search", "Gamma"]
    for i, name in enumerate(names):
        await client.assistants.create("approval", name=name, metadata={"tag": tag, "i": i})
    everything = await client.assistants.search(metadata={"tag": tag}, limit=10)
    assert sorted(a["name"] for a in everything) == sorted(names)
    # Default order: created_at desc.
    assert [a["metadata"]["i"] for a in everything] == [2, 1, 0]
    by_name = await client.assistants.search(
        metadata={"tag": tag}, sort_by="name", sort_order="asc"
    )
    assert [a["name"] for a in by_name] == sorted(names)
    matched = await client.assistants.search(metadata={"tag": tag}, name="SEARCH")
    assert sorted(a["name"] for a in matched) == ["Alpha Search", "beta search"]
    assert await client.assistants.count(metadata={"tag": tag}) == 3
    assert await client.assistants.count(metadata={"tag": tag}, name="gamma") == 1
    assert await client.assistants.count(metadata={"tag": tag}, graph_id="pipeline") == 0

    page1 = await client.assistants.search(metadata={"tag": tag}, limit=2, response_format="object")
    assert len(page1["assistants"]) == 2 and page1["next"] == "2"
    page2 = await client.assistants.search(
        metadata={"tag": tag}, limit=2, offset=2, response_format="object"
    )
    assert len(page2["assistants"]) == 1 and page2["next"] is None
    seen = {a["assistant_id"] for a in page1["assistants"] + page2["assistants"]}
    assert len(seen) == 3

    res = await http.post(
        "/assistants/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 0}
    )
    assert res.headers["x-pagination-next"] == "2"
    assert res.headers["x-pagination-total"] == "3"
    res = await http.post("/assistants/search", json={"metadata": {"tag": tag}, "offset": 1})
    assert "x-pagination-next" not in res.headers
    assert res.headers["x-pagination-total"] == "3"

    selected = await client.assistants.search(
        metadata={"tag": tag}, select=["assistant_id", "name"]
    )
    assert all(set(a) == {"assistant_id", "name"} for a in selected)
    with pytest.raises(NotFoundError):
        await client.assistants.search(graph_id="no-such-graph")


async def test_graph_drawing(client: Client, http: httpx.AsyncClient) -> None:
    drawn = await client.assistants.get_graph(system_id("pipeline"))
    ids = {n["id"] for n in drawn["nodes"]}
    assert ids == {"__start__", "research", "draft", "review", "__end__"}
    edges = {(e["source"], e["target"]) for e in drawn["edges"]}
    assert {("__start__", "research"), ("research", "draft"), ("review", "__end__")} <= edges
    assert all("id" not in (n.get("data") or {}) for n in drawn["nodes"])
    # A graph id is accepted on this route.
    by_name = await client.assistants.get_graph("pipeline")
    assert {n["id"] for n in by_name["nodes"]} == ids

    flat = await client.assistants.get_graph("subgraph")
    assert {n["id"] for n in flat["nodes"]} >= {"prepare", "child", "finish"}
    assert not any(n["id"].startswith("child:") for n in flat["nodes"])
    xray = await client.assistants.get_graph("subgraph", xray=True)
    assert {"child:sub_a", "child:sub_b"} <= {n["id"] for n in xray["nodes"]}
    for bad in ("0", "-1", "lots"):
        res = await http.get(f"/assistants/{system_id('pipeline')}/graph", params={"xray": bad})
        assert res.status_code == 422, (bad, res.text)


async def test_schemas_and_subgraphs(client: Client) -> None:
    schemas = await client.assistants.get_schemas(system_id("pipeline"))
    assert schemas["graph_id"] == "pipeline"
    assert {"topic", "steps", "summary"} <= set(schemas["state_schema"]["properties"])
    assert "topic" in schemas["input_schema"]["properties"]
    assert "summary" in schemas["output_schema"]["properties"]

    subgraphs = await client.assistants.get_subgraphs(system_id("subgraph"))
    assert set(subgraphs) == {"child"}
    assert "items" in subgraphs["child"]["state_schema"]["properties"]
    one = await client.assistants.get_subgraphs(system_id("subgraph"), namespace="child")
    assert set(one) == {"child"}
    assert await client.assistants.get_subgraphs(system_id("pipeline")) == {}
    with pytest.raises(NotFoundError):
        await client.assistants.get_subgraphs(system_id("subgraph"), namespace="nope")


async def test_unknown_and_invalid_ids(client: Client) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("not-a-uuid")
    with pytest.raises(NotFoundError):
        await client.assistants.get_schemas(str(uuid.uuid4()))


def test_sync_client_roundtrip(sync_client: SyncClient) -> None:
    tag = uuid.uuid4().hex
    a = sync_client.assistants.create("slow", metadata={"tag": tag}, name="sync one")
    assert sync_client.assistants.get(a["assistant_id"])["name"] == "sync one"
    b = sync_client.assistants.update(a["assistant_id"], metadata={"more": True})
    assert b["version"] == 2 and b["metadata"] == {"tag": tag, "more": True}
    assert [x["assistant_id"] for x in sync_client.assistants.search(metadata={"tag": tag})] == [
        a["assistant_id"]
    ]
    assert sync_client.assistants.count(metadata={"tag": tag}) == 1
    assert [v["version"] for v in sync_client.assistants.get_versions(a["assistant_id"])] == [2, 1]
    assert {n["id"] for n in sync_client.assistants.get_graph(a["assistant_id"])["nodes"]} >= {
        "step1",
        "step2",
        "step3",
    }
    sync_client.assistants.delete(a["assistant_id"])
    assert sync_client.assistants.count(metadata={"tag": tag}) == 0
    with pytest.raises(NotFoundError):
        sync_client.assistants.get(a["assistant_id"])
