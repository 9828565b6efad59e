"""Threads through the official SDK: CRUD, search, count, copy, prune, state and history."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from tests.e2e.helpers import Client, SyncClient, system_id

STEPS = ["researched x", "drafted", "reviewed"]


async def _ran_pipeline(client: Client, topic: str = "x", **meta: object) -> str:
    thread = await client.threads.create(metadata=dict(meta))
    await client.runs.wait(thread["thread_id"], "pipeline", input={"topic": topic})
    return str(thread["thread_id"])


async def test_crud(client: Client) -> None:
    thread = await client.threads.create(metadata={"owner": "ann", "n": 1})
    tid = thread["thread_id"]
    assert thread["status"] == "idle" and thread["values"] is None
    assert thread["metadata"] == {"owner": "ann", "n": 1}
    assert "interrupts" not in thread and "error" not in thread  # until it has a state
    got = await client.threads.get(tid)
    assert got["thread_id"] == tid and got["metadata"] == thread["metadata"]

    updated = await client.threads.update(tid, metadata={"n": 2, "extra": True})
    assert updated["metadata"] == {"owner": "ann", "n": 2, "extra": True}
    assert (await client.threads.get(tid))["metadata"]["n"] == 2

    chosen = str(uuid.uuid4())
    made = await client.threads.create(thread_id=chosen, metadata={"a": 1})
    assert made["thread_id"] == chosen
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=chosen)
    same = await client.threads.create(thread_id=chosen, if_exists="do_nothing", metadata={"b": 2})
    assert same["metadata"] == {"a": 1}

    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    with pytest.raises(NotFoundError):
        await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.update(tid, metadata={"x": 1})


async def test_run_stamps_metadata_and_values(client: Client) -> None:
    tid = await _ran_pipeline(client, "x", origin="test")
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle"
    assert thread["values"] == {"topic": "x", "steps": STEPS, "summary": "3 steps done"}
    assert thread["metadata"] == {
        "origin": "test",
        "graph_id": "pipeline",
        "assistant_id": system_id("pipeline"),
    }


async def test_search_filters(client: Client) -> None:
    tag = uuid.uuid4().hex
    done = await _ran_pipeline(client, "searched", tag=tag)
    idle = (await client.threads.create(metadata={"tag": tag, "kind": "empty"}))["thread_id"]
    interrupted = (await client.threads.create(metadata={"tag": tag}))["thread_id"]
    await client.runs.wait(interrupted, "approval", input={"request": "r"})

    def ids(items: list[dict[str, object]]) -> set[object]:
        return {t["thread_id"] for t in items}

    assert ids(await client.threads.search(metadata={"tag": tag})) == {done, idle, interrupted}
    assert ids(await client.threads.search(metadata={"tag": tag, "kind": "empty"})) == {idle}
    assert ids(await client.threads.search(metadata={"tag": tag}, status="interrupted")) == {
        interrupted
    }
    assert ids(await client.threads.search(metadata={"tag": tag}, status="idle")) == {done, idle}
    assert ids(await client.threads.search(values={"topic": "searched"})) == {done}
    assert ids(await client.threads.search(metadata={"graph_id": "approval", "tag": tag})) == {
        interrupted
    }
    assert ids(await client.threads.search(ids=[idle, done])) == {idle, done}
    assert await client.threads.count(metadata={"tag": tag}) == 3
    assert await client.threads.count(metadata={"tag": tag}, status="interrupted") == 1
    assert await client.threads.count(values={"topic": "searched"}) == 1

    # Default order is updated_at desc: the last-touched thread first.
    ordered = await client.threads.search(metadata={"tag": tag})
    assert ordered[0]["thread_id"] == interrupted
    asc = await client.threads.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in asc] == [done, idle, interrupted]

    selected = await client.threads.search(metadata={"tag": tag}, select=["thread_id", "status"])
    assert all(set(t) == {"thread_id", "status"} for t in selected)

    extracted = await client.threads.search(
        ids=[done],
        extract={"last": "values.steps[-1]", "topic": "values.topic", "g": "metadata.graph_id"},
    )
    assert extracted[0]["extracted"] == {"last": "reviewed", "topic": "searched", "g": "pipeline"}


async def test_search_pagination_headers(client: Client, http: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    made = [(await client.threads.create(metadata={"page": tag}))["thread_id"] for _ in range(5)]
    res = await http.post("/threads/search", json={"metadata": {"page": tag}, "limit": 2})
    assert res.status_code == 200
    assert res.headers["x-pagination-next"] == "2"
    assert res.headers["x-pagination-total"] == "3"
    seen: list[str] = []
    offset = 0
    while True:
        res = await http.post(
            "/threads/search", json={"metadata": {"page": tag}, "limit": 2, "offset": offset}
        )
        seen += [t["thread_id"] for t in res.json()]
        if "x-pagination-next" not in res.headers:
            assert res.headers["x-pagination-total"] == str(len(seen))
            break
        offset = int(res.headers["x-pagination-next"])
    assert sorted(seen) == sorted(made)


async def test_copy(client: Client) -> None:
    tid = await _ran_pipeline(client, "copied", owner="me")
    copied = await client.threads.copy(tid)
    assert copied["thread_id"] != tid
    assert copied["metadata"] == (await client.threads.get(tid))["metadata"]
    original_state = await client.threads.get_state(tid)
    copy_state = await client.threads.get_state(copied["thread_id"])
    assert copy_state["values"] == original_state["values"]
    assert copy_state["checkpoint"]["thread_id"] == copied["thread_id"]
    history = await client.threads.get_history(tid, limit=20)
    copy_history = await client.threads.get_history(copied["thread_id"], limit=20)
    assert [h["values"] for h in copy_history] == [h["values"] for h in history]
    # The copy lives on its own: running it does not touch the original.
    await client.runs.wait(copied["thread_id"], "pipeline", input={"topic": "y"})
    assert (await client.threads.get_state(tid))["values"] == original_state["values"]
    with pytest.raises(NotFoundError):
        await client.threads.copy(str(uuid.uuid4()))


async def test_prune(client: Client) -> None:
    gone = await _ran_pipeline(client)
    kept = await _ran_pipeline(client)
    values = (await client.threads.get_state(kept))["values"]
    assert len(await client.threads.get_history(kept, limit=20)) == 5
    assert (await client.threads.prune([kept], strategy="keep_latest"))["pruned_count"] == 1
    history = await client.threads.get_history(kept, limit=20)
    assert len(history) == 1 and history[0]["values"] == values
    assert (await client.threads.prune([gone, str(uuid.uuid4())]))["pruned_count"] == 1
    with pytest.raises(NotFoundError):
        await client.threads.get(gone)
    assert (await client.threads.get(kept))["thread_id"] == kept


async def test_state_of_new_thread_is_empty(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    state = await client.threads.get_state(tid)
    assert state["values"] == {} and state["next"] == [] and state["checkpoint"] is None
    assert state["tasks"] == [] and state["interrupts"] == []
    assert await client.threads.get_history(tid) == []
    with pytest.raises(BadRequestError):
        await client.threads.update_state(tid, {"topic": "x"})
    with pytest.raises(NotFoundError):
        await client.threads.get_state(str(uuid.uuid4()))


async def test_state_history_and_checkpoints(client: Client) -> None:
    tid = await _ran_pipeline(client, "hist")
    state = await client.threads.get_state(tid)
    assert state["next"] == [] and state["values"]["steps"] == [
        "researched hist",
        "drafted",
        "reviewed",
    ]
    assert state["metadata"]["source"] == "loop" and state["metadata"]["step"] == 3
    assert "checkpoint_ns" not in state["metadata"]

    history = await client.threads.get_history(tid, limit=10)
    assert [h["metadata"]["step"] for h in history] == [3, 2, 1, 0, -1]  # newest first
    assert [h["next"] for h in history] == [[], ["review"], ["draft"], ["research"], ["__start__"]]
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
    assert history[0]["checkpoint"] == state["checkpoint"]

    after_research = history[2]
    cp_id = after_research["checkpoint"]["checkpoint_id"]
    at = await client.threads.get_state(tid, checkpoint_id=cp_id)
    assert at["values"] == {"topic": "hist", "steps": ["researched hist"]}
    assert at["next"] == ["draft"]
    by_post = await client.threads.get_state(tid, checkpoint={"checkpoint_id": cp_id})
    assert by_post["values"] == at["values"]

    before = await client.threads.get_history(tid, before=cp_id, limit=10)
    assert [h["metadata"]["step"] for h in before] == [0, -1]
    before_obj = await client.threads.get_history(
        tid, before={"configurable": {"checkpoint_id": cp_id}}, limit=1
    )
    assert [h["metadata"]["step"] for h in before_obj] == [0]
    inputs = await client.threads.get_history(tid, metadata={"source": "input"}, limit=10)
    assert [h["metadata"]["step"] for h in inputs] == [-1]
    assert len(await client.threads.get_history(tid, limit=2)) == 2
    with pytest.raises(NotFoundError):
        await client.threads.get_state(tid, checkpoint_id=str(uuid.uuid4()))


async def test_update_state_as_node(client: Client) -> None:
    tid = await _ran_pipeline(client, "upd")
    res = await client.threads.update_state(tid, {"steps": ["manual"]}, as_node="draft")
    cp = res["checkpoint"]
    assert cp["thread_id"] == tid and cp["checkpoint_id"]
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == cp["checkpoint_id"]
    assert state["values"]["steps"][-1] == "manual"  # reducer applied
    assert state["next"] == ["review"]  # as if draft had just run
    assert state["metadata"]["source"] == "update"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["values"]["steps"][-1] == "manual"
    updates = await client.threads.get_history(tid, metadata={"source": "update"}, limit=10)
    assert [u["checkpoint"]["checkpoint_id"] for u in updates] == [cp["checkpoint_id"]]

    # Continuing runs the pending node, then the thread is idle again.
    result = await client.runs.wait(tid, "pipeline", input=None)
    assert result["summary"] == "5 steps done"
    assert (await client.threads.get(tid))["status"] == "idle"


def test_sync_threads(sync_client: SyncClient) -> None:
    tag = uuid.uuid4().hex
    thread = sync_client.threads.create(metadata={"tag": tag})
    tid = thread["thread_id"]
    out = sync_client.runs.wait(tid, "pipeline", input={"topic": "sync"})
    assert out["steps"] == ["researched sync", "drafted", "reviewed"]
    assert [t["thread_id"] for t in sync_client.threads.search(metadata={"tag": tag})] == [tid]
    assert sync_client.threads.count(metadata={"tag": tag}) == 1
    assert sync_client.threads.get_state(tid)["values"] == out
    history = sync_client.threads.get_history(tid, limit=3)
    assert [h["metadata"]["step"] for h in history] == [3, 2, 1]
    sync_client.threads.update_state(tid, {"summary": "edited"})
    assert sync_client.threads.get(tid)["values"]["summary"] == "edited"
    copy = sync_client.threads.copy(tid)
    assert sync_client.threads.get_state(copy["thread_id"])["values"]["summary"] == "edited"
    sync_client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(tid)
