"""Thread state and thread objects as the reference has them: invalid updates, graph factories,
checkpoint metadata and copies, exact shapes, supersteps, and bad input on every state route."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import BadRequestError, NotFoundError

from tests.e2e.helpers import RUN_KEYS, Client, system_id

PIPELINE = {
    "topic": "x",
    "steps": ["researched x", "drafted", "reviewed"],
    "summary": "3 steps done",
}
STATE_KEYS = {
    "values",
    "next",
    "tasks",
    "checkpoint",
    "metadata",
    "created_at",
    "parent_checkpoint",
    "interrupts",
    "checkpoint_id",
    "parent_checkpoint_id",
}
TASK_KEYS = {"id", "name", "path", "error", "interrupts", "checkpoint", "state", "result"}
THREAD_KEYS = {
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "status",
    "config",
    "values",
}


async def _ran(client: Client, graph: str = "pipeline", **run: Any) -> str:
    tid = str((await client.threads.create())["thread_id"])
    await client.runs.wait(tid, graph, **run)
    return tid


async def test_invalid_state_update_is_400_and_changes_nothing(client: Client) -> None:
    tid = await _ran(client, input={"topic": "x"})
    before = await client.threads.get_state(tid)
    bad: list[dict[str, Any]] = [
        {"values": [1, 2]},  # not the graph's state
        {"values": [{"topic": "y"}]},
        {"values": {"steps": "not a list"}},  # the reducer cannot add it
        {"values": {"topic": "y"}, "as_node": "nope"},
        {"values": {"topic": "y"}, "as_node": "__end__"},
    ]
    for body in bad:
        with pytest.raises(BadRequestError) as err:
            await client.threads.update_state(tid, **body)
        assert err.value.response.json()["detail"], body
    assert await client.threads.get_state(tid) == before
    assert (await client.threads.get(tid))["values"] == PIPELINE


async def test_factory_graph_state_is_built_with_the_threads_assistant_config(
    client: Client,
) -> None:
    """`dynamic` names its node from `configurable.node`: state calls must build it the same."""
    assistant = await client.assistants.create(
        "dynamic", config={"configurable": {"node": "assistant"}}
    )
    tid = await _ran(client, assistant["assistant_id"], input={"visits": []})
    assert (await client.threads.get(tid))["config"] == {"configurable": {"node": "assistant"}}
    state = await client.threads.get_state(tid)
    assert state["values"] == {"visits": ["assistant"]}
    res = await client.threads.update_state(tid, {"visits": ["edited"]}, as_node="assistant")
    assert res["checkpoint"]["thread_id"] == tid
    state = await client.threads.get_state(tid)
    assert state["values"] == {"visits": ["edited"]} and state["metadata"]["source"] == "update"
    history = await client.threads.get_history(tid, limit=10)
    assert [h["metadata"]["source"] for h in history] == ["update", "loop", "loop", "input"]
    with pytest.raises(BadRequestError, match="Node step does not exist"):
        await client.threads.update_state(tid, {"visits": []}, as_node="step")


async def test_checkpoint_metadata_names_the_thread_also_in_copies(client: Client) -> None:
    tid = await _ran(client, input={"topic": "x"})
    history = await client.threads.get_history(tid, limit=10)
    assert len(history) == 5
    assert {h["metadata"]["thread_id"] for h in history} == {tid}
    copy = await client.threads.copy(tid)
    new = copy["thread_id"]
    assert new != tid and copy["metadata"] == (await client.threads.get(tid))["metadata"]
    copied = await client.threads.get_history(new, limit=10)
    assert [h["values"] for h in copied] == [h["values"] for h in history]
    assert {h["metadata"]["thread_id"] for h in copied} == {new}
    assert {h["checkpoint"]["thread_id"] for h in copied} == {new}
    assert {h["metadata"]["thread_id"] for h in await client.threads.get_history(tid)} == {tid}
    assert len(await client.threads.get_history(new, metadata={"thread_id": new}, limit=10)) == 5


async def test_thread_objects_carry_only_the_references_keys(
    client: Client, http: httpx.AsyncClient
) -> None:
    created = await client.threads.create(metadata={"a": 1})
    tid = created["thread_id"]
    assert set(created) == THREAD_KEYS and created["values"] is None
    assert set((await http.get(f"/threads/{tid}", params={"include": "ttl"})).json()) == (
        THREAD_KEYS
    )
    await client.runs.wait(tid, "pipeline", input={"topic": "x"})
    thread = await client.threads.get(tid)
    assert set(thread) == THREAD_KEYS | {"error", "interrupts"}
    assert thread["error"] is None and thread["interrupts"] == {}
    assert thread["config"] == {"configurable": {}}
    assert thread["metadata"] == {
        "a": 1,
        "graph_id": "pipeline",
        "assistant_id": system_id("pipeline"),
    }
    (found,) = await client.threads.search(ids=[tid])
    assert found == thread


async def test_state_and_history_shapes_with_a_subgraph_at_an_interrupt(client: Client) -> None:
    tid = await _ran(client, "subgraph", input={"pause": True})
    state = await client.threads.get_state(tid)
    assert set(state) == STATE_KEYS and state["next"] == ["child"]
    (task,) = state["tasks"]
    assert set(task) == TASK_KEYS and task["state"] is None
    # A subgraph task names the subgraph's checkpoint namespace, not a checkpoint id.
    assert set(task["checkpoint"]) == {"thread_id", "checkpoint_ns"}
    assert task["checkpoint"]["thread_id"] == tid
    assert task["checkpoint"]["checkpoint_ns"].startswith("child:")
    (interrupt,) = task["interrupts"]
    assert set(interrupt) == {"id", "value"} and state["interrupts"] == [interrupt]
    assert set(state["checkpoint"]) == {"thread_id", "checkpoint_ns", "checkpoint_id"}
    assert "checkpoint_ns" not in state["metadata"]

    nested = await client.threads.get_state(tid, subgraphs=True)
    (task,) = nested["tasks"]
    assert task["checkpoint"] is None and set(task["state"]) == STATE_KEYS
    sub = task["state"]
    assert sub["values"]["items"] == ["prepare", "sub_a"] and sub["next"] == ["sub_b"]
    assert set(sub["checkpoint"]) == {
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "checkpoint_map",
    }
    assert [set(i) for i in sub["interrupts"]] == [{"id", "value"}]

    for snapshot in await client.threads.get_history(tid, limit=10):
        assert set(snapshot) == STATE_KEYS
        assert all(set(t) == TASK_KEYS for t in snapshot["tasks"])


async def test_failed_task_error_is_the_exception_text(client: Client) -> None:
    tid = await _ran(client, "failing", input={}, raise_error=False)
    (task,) = (await client.threads.get_state(tid))["tasks"]
    assert task["error"] == "ValueError('boom after ok ran')"


async def test_supersteps_build_a_new_threads_state(client: Client) -> None:
    thread = await client.threads.create(
        graph_id="pipeline",
        supersteps=[
            {"updates": [{"values": {"topic": "copied"}, "as_node": "__input__"}]},
            {"updates": [{"values": {"topic": "copied"}, "as_node": "__start__"}]},
            {"updates": [{"values": {"steps": ["researched copied"]}, "as_node": "research"}]},
        ],
    )
    tid = thread["thread_id"]
    assert thread["values"] == {"topic": "copied", "steps": ["researched copied"]}
    assert thread["status"] == "interrupted"  # `draft` is next
    state = await client.threads.get_state(tid)
    assert state["next"] == ["draft"] and state["values"] == thread["values"]
    history = await client.threads.get_history(tid, limit=10)
    assert [h["metadata"]["source"] for h in history] == ["update", "update", "input"]
    result = await client.runs.wait(tid, "pipeline", input=None)
    assert result["steps"] == ["researched copied", "drafted", "reviewed"]


async def test_supersteps_with_a_command_and_several_updates_per_step(client: Client) -> None:
    thread = await client.threads.create(
        graph_id="pipeline",
        supersteps=[
            {
                "updates": [
                    {"values": {"topic": "a"}, "as_node": "research"},
                    {"values": {"steps": ["two"]}, "as_node": "draft"},
                ]
            },
            {
                "updates": [
                    {"values": None, "command": {"update": {"steps": ["cmd"]}}, "as_node": "review"}
                ]
            },
        ],
    )
    assert thread["values"] == {"topic": "a", "steps": ["two", "cmd"]}
    assert len(await client.threads.get_history(thread["thread_id"], limit=10)) == 2


async def test_bad_supersteps_are_refused_and_leave_no_thread(
    client: Client, http: httpx.AsyncClient
) -> None:
    def body(graph: str | None, update: dict[str, Any]) -> dict[str, Any]:
        tid = str(uuid.uuid4())
        metadata = {"graph_id": graph} if graph else {}
        return {"thread_id": tid, "metadata": metadata, "supersteps": [{"updates": [update]}]}

    cases = [
        (body(None, {"values": {"topic": "a"}, "as_node": "research"}), 400),  # no graph
        (body("nope", {"values": {"topic": "a"}, "as_node": "research"}), 404),
        (body("pipeline", {"values": {"topic": "a"}, "as_node": "nope"}), 400),
        (body("pipeline", {"values": {"steps": "x"}, "as_node": "research"}), 400),
        (body("pipeline", {"values": {"topic": "a"}}), 422),  # as_node is required
        (body("pipeline", {"values": [1], "as_node": "research"}), 422),
        ({**body("pipeline", {}), "supersteps": [{"updates": []}]}, 400),
        ({**body("pipeline", {}), "supersteps": "x"}, 422),
    ]
    for payload, status in cases:
        res = await http.post("/threads", json=payload)
        assert res.status_code == status and res.json()["detail"], (payload, res.text)
        with pytest.raises(NotFoundError):
            await client.threads.get(payload["thread_id"])


async def test_bad_state_requests_are_4xx(client: Client, http: httpx.AsyncClient) -> None:
    """Every bad request on the state routes is a 4xx with a detail, never a 500."""
    tid = await _ran(client, input={"topic": "x"})
    other = await _ran(client, input={"topic": "o"})
    empty = (await client.threads.create())["thread_id"]
    lost = (await client.threads.create(metadata={"graph_id": "gone"}))["thread_id"]
    theirs = (await client.threads.get_state(other))["checkpoint_id"]
    unknown = str(uuid.uuid4())
    state, history = f"/threads/{tid}/state", f"/threads/{tid}/history"
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", state, {"values": "abc"}, 422),
        ("POST", state, {"values": {"topic": "y"}, "as_node": 5}, 422),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint_id": unknown}, 404),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint_id": theirs}, 404),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint_id": "zzz"}, 422),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint": {"checkpoint_id": unknown}}, 404),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint": "abc"}, 422),
        ("POST", state, {"values": {"topic": "y"}, "checkpoint": {"checkpoint_ns": "no:1"}}, 400),
        ("POST", state, [1], 422),
        ("POST", f"/threads/{empty}/state", {"values": {"topic": "y"}}, 400),
        ("POST", f"/threads/{lost}/state", {"values": {"topic": "y"}}, 404),
        ("POST", f"/threads/{unknown}/state", {"values": {"topic": "y"}}, 404),
        ("POST", "/threads/xyz/state", {"values": {"topic": "y"}}, 422),
        ("GET", f"{state}/{unknown}", None, 404),
        ("GET", f"{state}/{theirs}", None, 404),
        ("GET", f"{state}/zzz", None, 422),
        ("GET", f"/threads/{lost}/state", None, 404),
        ("POST", f"{state}/checkpoint", {"checkpoint": {"checkpoint_id": unknown}}, 404),
        ("POST", f"{state}/checkpoint", {"checkpoint": {"checkpoint_id": "zzz"}}, 422),
        ("POST", f"{state}/checkpoint", {}, 422),
        ("POST", f"{state}/checkpoint", {"checkpoint": "abc"}, 422),
        ("POST", history, {"limit": 10**9}, 422),
        ("POST", history, {"limit": 1001}, 422),
        ("POST", history, {"limit": 0}, 422),
        ("POST", history, {"limit": "ten"}, 422),
        ("POST", history, {"before": 5}, 422),
        ("POST", history, {"before": "zzz"}, 422),
        ("POST", history, {"before": unknown}, 404),
        ("POST", history, {"before": theirs}, 404),
        ("POST", history, {"before": {"configurable": {"checkpoint_id": unknown}}}, 404),
        ("POST", history, {"checkpoint": {"checkpoint_id": unknown}}, 404),
        ("POST", history, {"metadata": "x"}, 422),
        ("POST", f"/threads/{lost}/history", {}, 404),
        ("GET", history, {"limit": "abc"}, 422),
        ("GET", history, {"limit": "-3"}, 422),
        ("GET", history, {"before": "zzz"}, 422),
    ]
    failures = []
    for method, path, payload, status in cases:
        if method == "GET":
            res = await http.get(path, params=payload)
        else:
            res = await http.post(path, json=payload)
        if res.status_code != status or not res.json().get("detail"):
            failures.append((method, path, payload, status, res.status_code, res.text[:200]))
    assert not failures
    assert (await client.threads.get_state(tid))["values"] == PIPELINE


async def test_before_in_every_accepted_form(client: Client, http: httpx.AsyncClient) -> None:
    tid = await _ran(client, input={"topic": "x"})
    history = await client.threads.get_history(tid, limit=10)
    cp = history[2]["checkpoint"]
    forms: list[Any] = [
        cp["checkpoint_id"],
        {"configurable": {"checkpoint_id": cp["checkpoint_id"]}},
        cp,  # a flat checkpoint, as the state objects carry it
    ]
    for before in forms:
        got = await client.threads.get_history(tid, before=before, limit=10)
        assert [h["metadata"]["step"] for h in got] == [0, -1], before
    res = await http.get(f"/threads/{tid}/history", params={"before": cp["checkpoint_id"]})
    assert [h["metadata"]["step"] for h in res.json()] == [0, -1]
    ignored: dict[str, Any]
    for ignored in ({}, {"configurable": {}}):  # names no checkpoint: no bound, as the reference
        got = await client.threads.get_history(tid, before=ignored, limit=10)
        assert len(got) == 5


async def test_thread_search_validation(http: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"ids": ["x"]}, 400),
        ({"select": ["nope"]}, 422),
        ({"limit": 0}, 422),
        ({"limit": 1001}, 422),
        ({"status": "nope"}, 422),
    ]
    for body, status in cases:
        res = await http.post("/threads/search", json=body)
        assert res.status_code == status and res.json()["detail"], (body, res.text)


RUN_KWARGS = {
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "feedback_keys",
    "temporary",
    "subgraphs",
    "resumable",
    "checkpoint_during",
    "durability",
}


async def test_run_objects_carry_the_references_keys(
    client: Client, http: httpx.AsyncClient
) -> None:
    tid = (await client.threads.create(metadata={"a": 1}))["thread_id"]
    run = await client.runs.create(tid, "pipeline", input={"topic": "x"}, metadata={"m": 2})
    await client.runs.join(tid, run["run_id"])
    listed = await client.runs.list(tid)
    for shown in (run, await client.runs.get(tid, run["run_id"]), *listed):
        assert set(shown) == RUN_KEYS and shown["langsmith_session_name"] is None
        assert set(shown["kwargs"]) == RUN_KWARGS and shown["kwargs"]["checkpoint_during"]
        assert shown["metadata"] == {
            "created_by": "system",
            "a": 1,
            "graph_id": "pipeline",
            "assistant_id": system_id("pipeline"),
            "m": 2,
        }
        assert shown["kwargs"]["config"]["metadata"]["graph_id"] == "pipeline"
    body = {"assistant_id": "pipeline", "input": {"topic": "y"}, "checkpoint_during": False}
    later = (await http.post(f"/threads/{tid}/runs", json=body)).json()
    assert later["kwargs"]["checkpoint_during"] is False
    await client.runs.join(tid, later["run_id"])


async def test_thread_stream_refuses_unknown_stream_modes(
    client: Client, http: httpx.AsyncClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    for modes in ("nope", ["run_modes", "values"]):
        res = await http.get(f"/threads/{tid}/stream", params={"stream_modes": modes})
        assert res.status_code == 422 and "Invalid stream mode" in res.json()["detail"]
