"""Runs through the official SDK: create, wait, join, list, cancel, multitask, run options."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError
from langgraph_sdk.schema import RunCreateMetadata

from tests.e2e.helpers import Client, SyncClient, poll, poll_sync, run_status, system_id
from tests.support.gate import Gate

SLOW = "slow"


def _log(tag: str) -> list[str]:
    return [f"step1:{tag}", f"step2:{tag}", f"step3:{tag}"]


async def _running(client: Client, tid: str, gate: Gate, tag: str = "a") -> Any:
    """Start a slow run and return it once its first step is checkpointed; it is then held in
    step 2 until the test opens the gate."""
    gate.open("step1")
    run = await client.runs.create(tid, SLOW, input={"delay": 0.01, "tag": tag}, config=gate.config)
    await poll(
        lambda: client.threads.get_state(tid),
        lambda s: f"step1:{tag}" in (s["values"].get("log") or []),
    )
    return run


async def test_create_join_get_list_delete(client: Client) -> None:
    tid = (await client.threads.create(metadata={"who": "me"}))["thread_id"]
    created: list[RunCreateMetadata] = []
    run = await client.runs.create(
        tid,
        "pipeline",
        input={"topic": "bg"},
        metadata={"purpose": "test"},
        on_run_created=created.append,
    )
    assert created == [{"run_id": run["run_id"], "thread_id": tid}]
    assert run["status"] in ("pending", "running")
    assert run["assistant_id"] == system_id("pipeline")
    assert run["thread_id"] == tid
    # The assistant's, the thread's and the request's metadata, as the reference merges them.
    assert run["metadata"] == {
        "created_by": "system",
        "who": "me",
        "graph_id": "pipeline",
        "assistant_id": system_id("pipeline"),
        "purpose": "test",
    }
    assert run["multitask_strategy"] == "enqueue"
    assert run["kwargs"]["input"] == {"topic": "bg"}
    result = await client.runs.join(tid, run["run_id"])
    assert result["steps"] == ["researched bg", "drafted", "reviewed"]
    done = await client.runs.get(tid, run["run_id"])
    assert done["status"] == "success"
    # Joining a finished run returns the thread's values.
    assert await client.runs.join(tid, run["run_id"]) == result

    second = await client.runs.create(tid, "pipeline", input={"topic": "again"})
    await client.runs.join(tid, second["run_id"])
    listed = await client.runs.list(tid)
    assert [r["run_id"] for r in listed] == [second["run_id"], run["run_id"]]  # newest first
    assert [r["run_id"] for r in await client.runs.list(tid, limit=1, offset=1)] == [run["run_id"]]
    assert len(await client.runs.list(tid, status="success")) == 2
    assert await client.runs.list(tid, status="error") == []

    await client.runs.delete(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid)] == [second["run_id"]]
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.runs.list(str(uuid.uuid4()))


async def test_wait_and_headers(client: Client, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    created: list[RunCreateMetadata] = []
    out = await client.runs.wait(
        tid, "pipeline", input={"topic": "w"}, on_run_created=created.append
    )
    assert out == {
        "topic": "w",
        "steps": ["researched w", "drafted", "reviewed"],
        "summary": "3 steps done",
    }
    assert created[0]["thread_id"] == tid
    assert (await client.runs.get(tid, created[0]["run_id"]))["status"] == "success"

    res = await http.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "pipeline", "input": {"topic": "h"}}
    )
    rid = res.json() and res.headers["content-location"].rsplit("/", 1)[-1]
    assert res.headers["content-location"] == f"/threads/{tid}/runs/{rid}"
    assert res.headers["location"] == f"/threads/{tid}/runs/{rid}/join"
    assert res.json()["topic"] == "h"
    res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "pipeline", "input": {}})
    assert res.headers["content-location"] == f"/threads/{tid}/runs/{res.json()['run_id']}"


async def test_stateless_runs(client: Client) -> None:
    out = await client.runs.wait(None, "pipeline", input={"topic": "sl"})
    assert out["steps"] == ["researched sl", "drafted", "reviewed"]

    created: list[RunCreateMetadata] = []
    await client.runs.wait(None, "pipeline", input={"topic": "gone"}, on_run_created=created.append)
    temp = created[0]["thread_id"]
    assert temp is not None

    async def thread_gone() -> bool:
        try:
            await client.threads.get(temp)
        except NotFoundError:
            return True
        return False

    await poll(thread_gone, bool)

    kept = await client.runs.create(None, "pipeline", input={"topic": "kept"}, on_completion="keep")
    result = await client.runs.join(kept["thread_id"], kept["run_id"])
    assert result["topic"] == "kept"
    assert (await client.threads.get(kept["thread_id"]))["values"]["topic"] == "kept"

    batch = await client.runs.create_batch(
        [
            {"assistant_id": "pipeline", "input": {"topic": "b1"}, "on_completion": "keep"},
            {"assistant_id": "approval", "input": {"request": "b2"}, "on_completion": "keep"},
        ]
    )
    assert [r["assistant_id"] for r in batch] == [system_id("pipeline"), system_id("approval")]
    assert len({r["thread_id"] for r in batch}) == 2
    first = await client.runs.join(batch[0]["thread_id"], batch[0]["run_id"])
    assert first["topic"] == "b1"
    second = await client.runs.join(batch[1]["thread_id"], batch[1]["run_id"])
    assert second["__interrupt__"][0]["value"]["action"] == "send e-mail about b2"


async def test_cancel_interrupt_keeps_completed_steps(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await _running(client, tid, gate)
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    log = (await client.threads.get_state(tid))["values"]["log"]
    assert log[0] == "step1:a" and "step3:a" not in log
    assert (await client.threads.get(tid))["status"] != "busy"
    with pytest.raises(NotFoundError):  # no longer pending or running
        await client.runs.cancel(tid, run["run_id"])


async def test_cancel_rollback_deletes_run_and_checkpoints(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await _running(client, tid, gate)
    await client.runs.cancel(tid, run["run_id"], action="rollback")

    async def gone() -> bool:
        try:
            await client.runs.get(tid, run["run_id"])
        except NotFoundError:
            return True
        return False

    await poll(gone, bool)
    assert await client.threads.get_history(tid, limit=10) == []
    assert await client.runs.list(tid) == []
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_bulk_cancel(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await _running(client, tid, gate, "first")
    queued = [
        await client.runs.create(tid, SLOW, input={"delay": 0.01, "tag": f"q{i}"}) for i in range(2)
    ]
    await client.runs.cancel_many(thread_id=tid, run_ids=[r["run_id"] for r in queued])
    for r in queued:
        assert (await client.runs.get(tid, r["run_id"]))["status"] == "interrupted"
    gate.open()
    await client.runs.join(tid, first["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(tid))["values"]["log"] == _log("first")

    later = await client.runs.create(tid, SLOW, input={"delay": 0.01}, after_seconds=60)
    await client.runs.cancel_many(status="pending")
    assert (await client.runs.get(tid, later["run_id"]))["status"] == "interrupted"
    with pytest.raises(NotFoundError):
        await client.runs.cancel_many(thread_id=tid, run_ids=[later["run_id"]])


async def test_multitask_reject(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, SLOW, input={"delay": 0.01, "tag": "a"}, config=gate.config)
    with pytest.raises(ConflictError):
        await client.runs.create(tid, SLOW, input={"tag": "b"}, multitask_strategy="reject")
    gate.open()
    await client.runs.join(tid, run["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid)] == [run["run_id"]]
    assert (await client.threads.get_state(tid))["values"]["log"] == _log("a")


async def test_multitask_enqueue(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    r1 = await client.runs.create(tid, SLOW, input={"delay": 0.01, "tag": "a"}, config=gate.config)
    r2 = await client.runs.create(
        tid, SLOW, input={"delay": 0.01, "tag": "b"}, multitask_strategy="enqueue"
    )
    assert (await client.runs.get(tid, r2["run_id"]))["status"] == "pending"
    gate.open()
    await client.runs.join(tid, r2["run_id"])
    assert [(await client.runs.get(tid, r["run_id"]))["status"] for r in (r1, r2)] == [
        "success",
        "success",
    ]
    assert (await client.threads.get_state(tid))["values"]["log"] == _log("a") + _log("b")


async def test_multitask_interrupt(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    r1 = await _running(client, tid, gate, "a")
    r2 = await client.runs.create(
        tid, SLOW, input={"delay": 0.01, "tag": "b"}, multitask_strategy="interrupt"
    )
    await client.runs.join(tid, r2["run_id"])
    assert (await client.runs.get(tid, r1["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, r2["run_id"]))["status"] == "success"
    log = (await client.threads.get_state(tid))["values"]["log"]
    assert log[0] == "step1:a" and "step3:a" not in log and log[-3:] == _log("b")
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_multitask_rollback(client: Client, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    r1 = await _running(client, tid, gate, "a")
    r2 = await client.runs.create(
        tid, SLOW, input={"delay": 0.01, "tag": "b"}, multitask_strategy="rollback"
    )
    await client.runs.join(tid, r2["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, r1["run_id"])
    assert (await client.runs.get(tid, r2["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(tid))["values"]["log"] == _log("b")
    assert [r["run_id"] for r in await client.runs.list(tid)] == [r2["run_id"]]


async def test_after_seconds(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    start = time.time()
    run = await client.runs.create(tid, "pipeline", input={"topic": "later"}, after_seconds=1)
    status = (await client.runs.get(tid, run["run_id"]))["status"]
    if time.time() < start + 1:  # else a loaded machine answered after the run became due
        assert status == "pending"
    result = await client.runs.join(tid, run["run_id"])
    assert time.time() - start >= 0.9
    assert result["topic"] == "later"
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_if_not_exists_create(client: Client) -> None:
    tid = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(tid, "pipeline", input={"topic": "x"})
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    out = await client.runs.wait(
        tid, "pipeline", input={"topic": "new"}, if_not_exists="create", metadata={"m": 1}
    )
    assert out["topic"] == "new"
    thread = await client.threads.get(tid)
    assert thread["metadata"]["graph_id"] == "pipeline" and thread["metadata"]["m"] == 1
    assert thread["status"] == "idle"


async def test_durability(client: Client) -> None:
    lengths = {}
    for durability in ("sync", "async", "exit"):
        tid = (await client.threads.create())["thread_id"]
        out = await client.runs.wait(
            tid, "pipeline", input={"topic": durability}, durability=durability
        )
        assert out["summary"] == "3 steps done"
        history = await client.threads.get_history(tid, limit=20)
        assert history[0]["values"] == out
        lengths[durability] = len(history)
    assert lengths["sync"] == lengths["async"] == 5
    assert lengths["exit"] < lengths["sync"]


async def test_on_disconnect_cancel(client: Client, http: httpx.AsyncClient, gate: Gate) -> None:
    tid = (await client.threads.create())["thread_id"]
    body: dict[str, Any] = {
        "assistant_id": SLOW,
        "input": {"delay": 0.01},
        "config": gate.config,  # held until cancelled
        "on_disconnect": "cancel",
        "stream_mode": "values",
    }
    async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as res:
        assert res.status_code == 200
        run_id = res.headers["content-location"].rsplit("/", 1)[-1]
        async for line in res.aiter_lines():
            if line.startswith("event: metadata"):
                break
    run = await run_status(client, tid, run_id)
    assert run["status"] == "interrupted"

    # The default (continue) keeps the run going after the client leaves.
    body["on_disconnect"] = "continue"
    body["input"] = {"delay": 0.05}
    gate.open()
    async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as res:
        run_id = res.headers["content-location"].rsplit("/", 1)[-1]
        async for line in res.aiter_lines():
            if line.startswith("event: metadata"):
                break
    assert (await run_status(client, tid, run_id))["status"] == "success"


def test_sync_runs(sync_client: SyncClient, gate: Gate) -> None:
    tid = sync_client.threads.create()["thread_id"]
    run = sync_client.runs.create(tid, "pipeline", input={"topic": "s"})
    assert sync_client.runs.join(tid, run["run_id"])["topic"] == "s"
    parts = list(sync_client.runs.stream(tid, "pipeline", input={"topic": "t"}))
    assert parts[0].event == "metadata" and parts[-1].data["topic"] == "t"
    slow = sync_client.runs.create(tid, SLOW, input={"delay": 0.01}, config=gate.config)
    poll_sync(lambda: sync_client.runs.get(tid, slow["run_id"]), lambda r: r["status"] == "running")
    sync_client.runs.cancel(tid, slow["run_id"], wait=True)
    assert sync_client.runs.get(tid, slow["run_id"])["status"] == "interrupted"
    assert next(r["run_id"] for r in sync_client.runs.list(tid)) == slow["run_id"]
    out = sync_client.runs.wait(None, "pipeline", input={"topic": "stateless"})
    assert out["steps"][0] == "researched stateless"
