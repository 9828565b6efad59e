"""Error handling: status codes and messages for bad requests, and that a refused request
leaves nothing half-written."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)
from langgraph_sdk.schema import StreamPart

from tests.e2e.helpers import Client, collect, poll, system_id
from tests.support.gate import Gate


async def test_malformed_json_and_wrong_types(http: httpx.AsyncClient) -> None:
    for path in ("/threads", "/assistants", "/threads/search", "/runs/wait"):
        res = await http.post(
            path, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert res.status_code == 422, (path, res.text)
        assert "detail" in res.json()
    cases = [
        ("/threads/search", {"limit": "many"}, "limit"),
        ("/threads/search", {"metadata": ["a"]}, "metadata"),
        ("/threads", {"metadata": "nope"}, "metadata"),
        ("/assistants", {"graph_id": 42}, "graph_id"),
        ("/assistants/search", {"sort_by": "nonsense"}, "sort_by"),
        ("/threads/prune", {"thread_ids": ["not-a-uuid"]}, "thread_ids"),
        ("/runs/wait", {"assistant_id": "pipeline", "durability": "forever"}, "durability"),
        ("/runs/wait", {"assistant_id": "pipeline", "multitask_strategy": "shout"}, "multitask"),
    ]
    for path, body, field in cases:
        res = await http.post(path, json=body)
        assert res.status_code == 422, (path, body, res.text)
        assert field in res.json()["detail"], res.text


async def test_invalid_uuids_in_paths(http: httpx.AsyncClient) -> None:
    tid = (await http.post("/threads", json={})).json()["thread_id"]
    for method, path in [
        ("GET", "/threads/nope"),
        ("GET", "/threads/nope/state"),
        ("POST", "/threads/nope/history"),
        ("GET", "/assistants/nope"),
        ("GET", f"/threads/{tid}/runs/nope"),
        ("POST", "/threads/nope/runs"),
        ("DELETE", "/threads/nope"),
    ]:
        res = await http.request(
            method, path, json={"assistant_id": "pipeline"} if method == "POST" else None
        )
        assert res.status_code == 422, (method, path, res.text)


async def test_unknown_resources(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(tid, missing, input={})
    with pytest.raises(UnprocessableEntityError) as exc:
        await client.runs.create(tid, "no-such-graph", input={})
    assert "Invalid assistant: 'no-such-graph'" in str(exc.value.body or exc.value)
    with pytest.raises(NotFoundError):
        await client.runs.create(missing, "pipeline", input={})
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, missing)
    with pytest.raises(NotFoundError):
        await client.runs.cancel(tid, missing)
    with pytest.raises(NotFoundError):
        await client.runs.delete(tid, missing)
    with pytest.raises(NotFoundError):
        await client.threads.get_history(missing)
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(missing)
    # Nothing was written by the refused creates.
    assert await client.runs.list(tid) == []
    thread = await client.threads.get(tid)
    assert thread["metadata"] == {} and thread["status"] == "idle"


async def test_unknown_stream_modes(client: Client, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    for mode in ("bogus", "tools", "lifecycle"):
        res = await http.post(
            f"/threads/{tid}/runs/stream", json={"assistant_id": "pipeline", "stream_mode": [mode]}
        )
        assert res.status_code == 422, (mode, res.text)
        assert "stream_mode" in res.json()["detail"]
    with pytest.raises(UnprocessableEntityError):
        await collect(client.runs.stream(tid, "pipeline", input={}, stream_mode="bogus"))
    assert await client.runs.list(tid) == []


async def test_unsupported_fields_are_named(client: Client, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create(metadata={"keep": 1}))["thread_id"]
    with pytest.raises(UnprocessableEntityError) as exc:
        # A webhook the URL policy refuses (relative: loopback, refused by default).
        await client.runs.create(tid, "pipeline", input={}, webhook="/relative/hook")
    assert "webhook" in str(exc.value.body or exc.value)
    with pytest.raises(UnprocessableEntityError) as exc:
        await collect(client.runs.stream(tid, "pipeline", input={}, feedback_keys=["score"]))
    assert "feedback_keys" in str(exc.value.body or exc.value)
    # Unknown fields the SDK may add later are ignored, not refused.
    out = await client.runs.wait(tid, "pipeline", input={"topic": "ok"}, params=None)
    res = await http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "pipeline", "input": {"topic": "ok"}, "future_field": {"x": 1}},
    )
    assert res.status_code == 200 and res.json()["topic"] == "ok"
    assert out["topic"] == "ok"
    assert len(await client.runs.list(tid)) == 2
    assert (await client.threads.get(tid))["metadata"]["keep"] == 1


async def test_graph_error(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(
        client.runs.stream(tid, "failing", input={}, stream_mode=["values", "updates"])
    )
    assert parts[0].event == "metadata"
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "boom after ok ran"}
    assert events_before_error(parts) == ["metadata", "updates", "values"]
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"
    assert thread["values"] == {"value": "ok ran"}

    out = await client.runs.wait(tid, "failing", input={"secret": True}, raise_error=False)
    assert out == {"__error__": {"error": "SecretError", "message": "An internal error occurred"}}
    with pytest.raises(Exception, match="ValueError: boom after ok ran"):
        await client.runs.wait(tid, "failing", input={"secret": False})
    run = (await client.runs.list(tid, limit=1))[0]
    assert await client.runs.join(tid, run["run_id"]) == {
        "__error__": {"error": "ValueError", "message": "boom after ok ran"}
    }


def events_before_error(parts: list[StreamPart]) -> list[str]:
    names = [p.event for p in parts]
    return names[: names.index("error")]


async def test_update_state_while_run_active(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid, "slow", input={"delay": 0.01, "tag": "busy"}, config=gate.config
    )
    await poll(lambda: client.runs.get(tid, run["run_id"]), lambda r: r["status"] == "running")
    with pytest.raises(ConflictError):
        await client.threads.update_state(tid, {"tag": "sneaky"})
    with pytest.raises(ConflictError):
        await client.runs.create(tid, "slow", input={}, multitask_strategy="reject")
    gate.open()
    await client.runs.join(tid, run["run_id"])
    state = await client.threads.get_state(tid)
    assert state["values"]["tag"] == "busy"
    assert state["values"]["log"] == ["step1:busy", "step2:busy", "step3:busy"]
    assert [r["run_id"] for r in await client.runs.list(tid)] == [run["run_id"]]
    assert await client.threads.get_history(tid, metadata={"source": "update"}) == []


async def test_bad_combinations(client: Client, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(BadRequestError):
        await client.runs.create(
            tid, "pipeline", input={}, config={"configurable": {"a": 1}}, context={"b": 2}
        )
    res = await http.post("/runs/cancel", json={"status": "all", "run_ids": [str(uuid.uuid4())]})
    assert res.status_code == 422
    res = await http.post(
        f"/threads/{tid}/runs/{uuid.uuid4()}/cancel", params={"action": "explode"}
    )
    assert res.status_code in (404, 422)
    assert await client.runs.list(tid) == []


async def test_failed_creates_write_nothing(client: Client) -> None:
    tag = uuid.uuid4().hex
    before = await client.assistants.count()
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph", metadata={"tag": tag})
    assert await client.assistants.count() == before
    a = await client.assistants.create("pipeline", metadata={"tag": tag})
    with pytest.raises(NotFoundError):
        await client.assistants.update(a["assistant_id"], graph_id="no-such-graph")
    assert [v["version"] for v in await client.assistants.get_versions(a["assistant_id"])] == [1]
    assert (await client.assistants.get(a["assistant_id"]))["graph_id"] == "pipeline"

    threads_before = await client.threads.count(metadata={"tag": tag})
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(
            str(uuid.uuid4()),
            "pipeline",
            if_not_exists="create",
            webhook="/relative/hook",
            metadata={"tag": tag},
        )
    with pytest.raises(NotFoundError):
        await client.runs.create(
            str(uuid.uuid4()), str(uuid.uuid4()), if_not_exists="create", metadata={"tag": tag}
        )
    assert await client.threads.count(metadata={"tag": tag}) == threads_before
    assert system_id("pipeline") != a["assistant_id"]
