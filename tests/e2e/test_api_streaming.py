"""Streaming through the official SDK: every stream mode, subgraph namespaces, event ids,
rejoining with Last-Event-ID, and the thread-wide stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from typing import Any

import httpx
import orjson
from langgraph_sdk.schema import StreamPart

from tests.e2e.helpers import (
    Client,
    SyncClient,
    assert_ids_increase,
    collect,
    events_named,
    parse_sse,
    run_status,
)
from tests.support.gate import Gate

PIPELINE_STEPS = ["researched s", "drafted", "reviewed"]
HELLO = {"messages": [{"role": "user", "content": "hi there"}]}


async def _stream(client: Client, graph: str, inp: Any, **kw: Any) -> list[StreamPart]:
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(client.runs.stream(tid, graph, input=inp, **kw))
    assert parts[0].event == "metadata"
    assert "end" not in {p.event for p in parts}
    assert_ids_increase(parts)
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "success", run
    return parts


async def test_values_is_default(client: Client) -> None:
    parts = await _stream(client, "pipeline", {"topic": "s"})
    assert {p.event for p in parts} == {"metadata", "values"}
    assert parts[0].data["attempt"] == 1
    values = events_named(parts, "values")
    assert values[0] == {"topic": "s", "steps": []} or values[0] == {"topic": "s"}
    assert [v.get("steps") for v in values[-3:]] == [
        PIPELINE_STEPS[:1],
        PIPELINE_STEPS[:2],
        PIPELINE_STEPS,
    ]
    assert values[-1]["summary"] == "3 steps done"


async def test_updates_and_custom(client: Client) -> None:
    parts = await _stream(client, "pipeline", {"topic": "s"}, stream_mode=["updates", "custom"])
    assert {p.event for p in parts} == {"metadata", "updates", "custom"}
    assert events_named(parts, "updates") == [
        {"research": {"steps": ["researched s"]}},
        {"draft": {"steps": ["drafted"]}},
        {"review": {"steps": ["reviewed"], "summary": "3 steps done"}},
    ]
    assert events_named(parts, "custom") == [
        {"stage": "research", "progress": 0.33},
        {"stage": "draft", "progress": 0.66},
        {"stage": "review", "progress": 1.0},
    ]
    # Custom events arrive before the update of the node that wrote them.
    names = [p.event for p in parts]
    assert names[1:] == ["custom", "updates"] * 3


async def test_messages_tuple(client: Client) -> None:
    parts = await _stream(client, "chat_fake", HELLO, stream_mode="messages-tuple")
    assert {p.event for p in parts} == {"metadata", "messages"}
    tuples = events_named(parts, "messages")
    chunks = [(c, m) for c, m in tuples if m["langgraph_node"] == "model"]
    assert len(chunks) > 3
    assert {c["type"] for c, _ in chunks} == {"AIMessageChunk"}
    ids = {c["id"] for c, _ in chunks}
    assert len(ids) == 1 and next(iter(ids))
    assert "".join(c["content"] for c, _ in chunks) == "you said hi there"
    meta = chunks[0][1]
    assert meta["graph_id"] == "chat_fake" and meta["langgraph_step"] == 1
    notes = [c for c, m in tuples if m["langgraph_node"] == "note"]
    assert [(n["type"], n["content"], n["id"]) for n in notes] == [
        ("ai", "noted 2 messages", "note-2")
    ]


async def test_messages_partial_and_complete(client: Client) -> None:
    parts = await _stream(client, "chat_fake", HELLO, stream_mode="messages")
    names = {p.event for p in parts}
    assert names == {"metadata", "messages/metadata", "messages/partial", "messages/complete"}
    partial = events_named(parts, "messages/partial")
    contents = [p[0]["content"] for p in partial]
    assert contents[-1] == "you said hi there"
    assert all(b.startswith(a) for a, b in itertools.pairwise(contents))  # accumulated
    complete = events_named(parts, "messages/complete")
    assert [c[0]["content"] for c in complete] == ["noted 2 messages"]
    metadata = events_named(parts, "messages/metadata")
    assert {next(iter(m)) for m in metadata} == {partial[0][0]["id"], "note-2"}
    assert all(m[next(iter(m))]["metadata"]["graph_id"] == "chat_fake" for m in metadata)


async def test_events_mode(client: Client) -> None:
    parts = await _stream(client, "chat_fake", HELLO, stream_mode="events")
    assert {p.event for p in parts} == {"metadata", "events"}
    events = events_named(parts, "events")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chain_start" and kinds[-1] == "on_chain_end"
    tokens = [e["data"]["chunk"]["content"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == "you said hi there"
    assert events[-1]["data"]["output"]["messages"][-1]["content"] == "noted 2 messages"


async def test_debug_tasks_checkpoints(client: Client) -> None:
    parts = await _stream(
        client, "pipeline", {"topic": "s"}, stream_mode=["debug", "tasks", "checkpoints"]
    )
    assert {p.event for p in parts} == {"metadata", "debug", "tasks", "checkpoints"}
    debug = events_named(parts, "debug")
    assert {d["type"] for d in debug} == {"checkpoint", "task", "task_result"}
    assert [d["payload"]["name"] for d in debug if d["type"] == "task"] == [
        "research",
        "draft",
        "review",
    ]
    cps = [d["payload"] for d in debug if d["type"] == "checkpoint"]
    assert cps[0]["parent_checkpoint"] is None
    for prev, cur in itertools.pairwise(cps):
        assert cur["parent_checkpoint"] == prev["checkpoint"]
        assert cur["checkpoint"]["checkpoint_id"] == cur["config"]["configurable"]["checkpoint_id"]
        assert cur["checkpoint"]["checkpoint_ns"] == ""
    last_cp = [d for d in debug if d["type"] == "checkpoint"][-1]
    assert last_cp["payload"]["values"]["summary"] == "3 steps done"
    tasks = events_named(parts, "tasks")
    starts = [t for t in tasks if "input" in t]
    results = [t for t in tasks if "result" in t]
    assert [t["name"] for t in starts] == ["research", "draft", "review"]
    assert [t["result"] for t in results] == [
        {"steps": ["researched s"]},
        {"steps": ["drafted"]},
        {"steps": ["reviewed"], "summary": "3 steps done"},
    ]
    assert [s["id"] for s in starts] == [r["id"] for r in results]
    checkpoints = events_named(parts, "checkpoints")
    assert [c["next"] for c in checkpoints] == [
        ["__start__"],
        ["research"],
        ["draft"],
        ["review"],
        [],
    ]
    assert checkpoints[-1]["values"]["steps"] == PIPELINE_STEPS
    for prev, cur in itertools.pairwise(checkpoints):
        assert (
            cur["parent_config"]["configurable"]["checkpoint_id"]
            == prev["config"]["configurable"]["checkpoint_id"]
        )


async def test_subgraph_namespaces(client: Client) -> None:
    modes = ["values", "updates", "custom"]
    flat = await _stream(client, "subgraph", {"items": []}, stream_mode=modes)
    assert all("|" not in p.event for p in flat)
    assert events_named(flat, "custom") == []  # written inside the subgraph only

    nested = await _stream(
        client, "subgraph", {"items": []}, stream_mode=modes, stream_subgraphs=True
    )
    sub = [p for p in nested if "|" in p.event]
    namespaces = {p.event.split("|", 1)[1] for p in sub}
    assert len(namespaces) == 1
    ns = next(iter(namespaces))
    assert ns.startswith("child:") and uuid.UUID(ns.split(":", 1)[1])
    assert {p.event.split("|")[0] for p in sub} == {"values", "updates", "custom"}
    assert [p.data for p in sub if p.event == f"custom|{ns}"] == [{"inside": "sub_a"}]
    assert [p.data for p in sub if p.event == f"updates|{ns}"] == [
        {"sub_a": {"items": ["prepare", "sub_a"]}},
        {"sub_b": {"items": ["prepare", "sub_a", "sub_b"]}},
    ]
    root_values = events_named(nested, "values")
    assert root_values[-1] == {"items": ["prepare", "sub_a", "sub_b", "finish"]}

    v2 = [
        part
        async for part in client.runs.stream(
            None,
            "subgraph",
            input={"items": []},
            stream_mode="updates",
            stream_subgraphs=True,
            version="v2",
        )
    ]
    nss = [tuple(p["ns"]) for p in v2 if p["type"] == "updates"]
    assert nss[0] == () and any(len(n) == 1 and n[0].startswith("child:") for n in nss)


async def test_raw_sse_wire_format(client: Client, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    res = await http.post(
        f"/threads/{tid}/runs/stream",
        json={
            "assistant_id": "pipeline",
            "input": {"topic": "w"},
            "stream_mode": ["values", "updates"],
        },
    )
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/event-stream")
    rid = res.headers["content-location"].rsplit("/", 1)[-1]
    assert res.headers["content-location"] == f"/threads/{tid}/runs/{rid}"
    assert res.headers["location"] == f"/threads/{tid}/runs/{rid}/stream"
    events = parse_sse(res.text)
    assert events[0].event == "metadata" and events[0].data["run_id"] == rid
    assert all(e.id for e in events)
    assert [e.event for e in events].count("updates") == 3
    assert "\n" not in res.text.replace("\r\n", "").replace("\n\n", "")  # one line per field


async def test_rejoin_with_last_event_id(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    seen: list[StreamPart] = []
    gate.open("step1")  # then held in step 2 until the client has left
    stream = client.runs.stream(
        tid,
        "slow",
        input={"delay": 0.01, "tag": "r"},
        stream_mode=["values", "updates"],
        stream_resumable=True,
        config=gate.config,
    )
    async with contextlib.aclosing(stream):
        async for part in stream:
            seen.append(part)
            if len(seen) == 3:
                break  # disconnect mid-run
    run_id = seen[0].data["run_id"]
    assert (await client.runs.get(tid, run_id))["status"] in ("pending", "running")
    gate.open()
    rest = await collect(client.runs.join_stream(tid, run_id, last_event_id=seen[-1].id))
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    full = await collect(client.runs.join_stream(tid, run_id, last_event_id="-1"))
    assert [(p.event, p.data, p.id) for p in full] == [(p.event, p.data, p.id) for p in seen + rest]
    assert_ids_increase(full)
    assert full[-1].data["log"] == ["step1:r", "step2:r", "step3:r"] or full[-1].event == "updates"
    # Replays honour a stream_mode filter; a finished run with nothing to replay closes at once.
    only_updates = await collect(
        client.runs.join_stream(tid, run_id, last_event_id="-1", stream_mode="updates")
    )
    assert {p.event for p in only_updates} == {"metadata", "updates"}
    assert len(only_updates) == 1 + 3
    assert await collect(client.runs.join_stream(tid, run_id)) == []


async def test_join_stream_live(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    modes = ["values", "updates", "custom"]  # custom: the held step's {"held": ...} events
    run = await client.runs.create(
        tid, "slow", input={"delay": 0.01, "tag": "j"}, stream_mode=modes, config=gate.config
    )
    parts = []
    async for part in client.runs.join_stream(tid, run["run_id"]):
        parts.append(part)
        gate.open()  # an event arrived, so the join follows the run: let the run finish
    assert parts, "joined a live run but received nothing"
    assert_ids_increase(parts)
    assert events_named(parts, "values")[-1]["log"] == ["step1:j", "step2:j", "step3:j"]
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_thread_stream_follows_runs(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid,
        "slow",
        input={"delay": 0.01, "tag": "t"},
        stream_mode=["values", "custom"],
        config=gate.config,
    )
    got: list[StreamPart] = []

    async def follow() -> None:
        async for part in await client.threads.join_stream(tid):
            got.append(part)
            gate.open()  # the thread stream follows the (held) run: let it finish
            if part.event == "metadata" and part.data.get("status") == "run_done":
                return

    await asyncio.wait_for(follow(), 60)
    assert got[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    values = events_named(got, "values")
    assert values and values[-1]["log"] == ["step1:t", "step2:t", "step3:t"]
    assert all(p.id for p in got)
    await run_status(client, tid, run["run_id"])

    replay = []
    stream = await client.threads.join_stream(tid, last_event_id="-1")
    async with contextlib.aclosing(stream):
        async for part in stream:
            replay.append(part)
            if part.event == "values" and part.data.get("log") == values[-1]["log"]:
                break
    assert replay[0].event == "metadata" and replay[0].data["run_id"] == run["run_id"]


async def test_thread_stream_state_updates(client: Client, server_url: str) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "pipeline", input={"topic": "u"})
    async with (
        httpx.AsyncClient(base_url=server_url, timeout=60) as raw,
        raw.stream("GET", f"/threads/{tid}/stream", params={"stream_mode": "state_update"}) as res,
    ):
        assert res.status_code == 200
        await client.threads.update_state(tid, {"summary": "changed"})
        buf = ""
        async for chunk in res.aiter_text():
            buf += chunk
            if "\r\n\r\n" in buf.replace(": heartbeat\r\n\r\n", ""):
                break
    events = parse_sse(buf)
    assert [e.event for e in events] == ["state_update"]
    assert events[0].data["thread_id"] == tid
    assert events[0].data["state"]["values"]["summary"] == "changed"
    assert orjson.dumps(events[0].data)  # plain JSON


def test_sync_stream_and_join(sync_client: SyncClient) -> None:
    tid = sync_client.threads.create()["thread_id"]
    parts = list(
        sync_client.runs.stream(
            tid, "pipeline", input={"topic": "s"}, stream_mode=["updates"], stream_resumable=True
        )
    )
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
    assert all(p.id for p in parts)
    run_id = parts[0].data["run_id"]
    replay = list(sync_client.runs.join_stream(tid, run_id, last_event_id=parts[1].id))
    assert [(p.event, p.data) for p in replay] == [(p.event, p.data) for p in parts[2:]]
