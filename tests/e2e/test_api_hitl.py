"""Human in the loop and time travel through the official SDK: interrupts, resume with
approve / edit / reject, breakpoints, command update and goto, checkpoint replay and forks."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.errors import BadRequestError

from tests.e2e.helpers import Client, SyncClient, collect, events_named

ACTION = "send e-mail about invoice"


async def _interrupted(client: Client) -> tuple[str, dict[str, Any]]:
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(
        client.runs.stream(
            tid, "approval", input={"request": "invoice"}, stream_mode=["values", "updates"]
        )
    )
    # The run succeeded; the thread is the one left interrupted (as the reference records it).
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "success"
    values = events_named(parts, "values")
    assert ["__interrupt__" in v for v in values] == [False, False, True]  # sent once
    last_values = values[-1]
    assert last_values["action"] == ACTION
    [intr] = last_values["__interrupt__"]
    assert intr["value"] == {
        "question": "Approve this action?",
        "action": ACTION,
        "options": ["approve", "edit", "reject"],
    }
    assert intr["id"]
    assert events_named(parts, "updates")[-1] == {"__interrupt__": [intr]}
    # Stream events carry LangGraph's interrupt as is; threads and states leave out an
    # unset response_schema.
    assert intr["response_schema"] is None
    return tid, {"id": intr["id"], "value": intr["value"]}


async def test_interrupt_shows_everywhere(client: Client) -> None:
    tid, intr = await _interrupted(client)
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert [i for items in thread["interrupts"].values() for i in items] == [intr]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask_human"]
    assert state["tasks"][0]["name"] == "ask_human"
    # State objects carry {id, value} (no `response_schema: null`, as the reference).
    in_state = {"id": intr["id"], "value": intr["value"]}
    assert state["tasks"][0]["interrupts"] == [in_state]
    assert state["interrupts"] == [in_state]
    history = await client.threads.get_history(tid, limit=1)
    assert history[0]["tasks"][0]["interrupts"] == [in_state]
    assert [
        t["thread_id"] for t in await client.threads.search(ids=[tid], status="interrupted")
    ] == [tid]
    # Joining the finished run reports the thread's pending interrupts (without values).
    runs = await client.runs.list(tid)
    assert await client.runs.join(tid, runs[0]["run_id"]) == {"__interrupt__": [intr]}


@pytest.mark.parametrize(
    ("resume", "decision", "result"),
    [
        ({"type": "approve"}, "approved", f"done: {ACTION}"),
        ({"type": "edit", "action": "call the customer"}, "edited", "done: call the customer"),
        ({"type": "reject"}, "rejected", "nothing done"),
    ],
)
async def test_resume_decisions(
    client: Client, resume: dict[str, Any], decision: str, result: str
) -> None:
    tid, _ = await _interrupted(client)
    out = await client.runs.wait(tid, "approval", input={}, command={"resume": resume})
    assert out["decision"] == decision and out["result"] == result
    assert "__interrupt__" not in out
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    assert thread["values"]["result"] == result
    assert (await client.threads.get_state(tid))["next"] == []


async def test_resume_by_interrupt_id_via_stream(client: Client) -> None:
    tid, intr = await _interrupted(client)
    parts = await collect(
        client.runs.stream(
            tid,
            "approval",
            command={"resume": {intr["id"]: {"type": "approve"}}},
            stream_mode="updates",
        )
    )
    updates = events_named(parts, "updates")
    assert updates[0] == {"ask_human": {"decision": "approved"}}
    assert updates[-1] == {"execute": {"result": f"done: {ACTION}"}}


async def test_resume_without_interrupt_is_400(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "pipeline", input={"topic": "x"})
    with pytest.raises(BadRequestError):
        await client.runs.create(tid, "pipeline", command={"resume": "yes"})
    assert len(await client.runs.list(tid)) == 1
    with pytest.raises(BadRequestError):  # stateless runs have nothing to resume
        await client.runs.create(None, "pipeline", command={"resume": "yes"})


async def test_interrupt_before_and_continue(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(
        client.runs.stream(
            tid,
            "pipeline",
            input={"topic": "b"},
            interrupt_before=["draft"],
            stream_mode=["values", "updates"],
        )
    )
    # A breakpoint shows in `updates` only; the run succeeds, the thread is interrupted.
    assert events_named(parts, "updates")[-1] == {"__interrupt__": []}
    assert events_named(parts, "values")[-1] == {"topic": "b", "steps": ["researched b"]}
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "success"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["draft"] and state["values"]["steps"] == ["researched b"]
    assert (await client.threads.get(tid))["status"] == "interrupted"
    out = await client.runs.wait(tid, "pipeline", input=None)
    assert out["steps"] == ["researched b", "drafted", "reviewed"]
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_interrupt_after_all(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    seen = []
    out = await client.runs.wait(tid, "pipeline", input={"topic": "a"}, interrupt_after="*")
    seen.append(out["steps"])
    while (await client.threads.get_state(tid))["next"]:
        out = await client.runs.wait(tid, "pipeline", input=None, interrupt_after="*")
        seen.append(out["steps"])
    assert seen == [
        ["researched a"],
        ["researched a", "drafted"],
        ["researched a", "drafted", "reviewed"],
    ]


async def test_command_update_and_goto(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "pipeline", input={"topic": "g"})
    out = await client.runs.wait(
        tid, "pipeline", command={"update": {"topic": "z", "steps": ["patched"]}, "goto": "review"}
    )
    assert out["topic"] == "z"
    assert out["steps"] == ["researched g", "drafted", "reviewed", "patched", "reviewed"]
    assert out["summary"] == "5 steps done"
    # update given as [key, value] pairs
    pairs = await client.runs.wait(
        tid, "pipeline", command={"update": [["topic", "pairs"]], "goto": ["review"]}
    )
    assert pairs["topic"] == "pairs" and pairs["summary"] == "6 steps done"


async def test_subgraph_interrupt_and_state(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "subgraph", input={"items": [], "pause": True})
    assert out["__interrupt__"][0]["value"] == {"question": "continue the subgraph?"}
    state = await client.threads.get_state(tid, subgraphs=True)
    assert state["next"] == ["child"]
    [task] = state["tasks"]
    assert task["name"] == "child"
    sub = task["state"]
    assert sub["next"] == ["sub_b"] and sub["values"]["items"] == ["prepare", "sub_a"]
    assert sub["checkpoint"]["checkpoint_ns"].startswith("child:")
    shallow = await client.threads.get_state(tid)
    assert shallow["tasks"][0]["state"] is None
    assert shallow["tasks"][0]["checkpoint"]["checkpoint_ns"].startswith("child:")
    sub_history = await client.threads.get_history(
        tid, checkpoint={"checkpoint_ns": sub["checkpoint"]["checkpoint_ns"]}, limit=10
    )
    assert sub_history and sub_history[0]["values"]["items"] == ["prepare", "sub_a"]
    done = await client.runs.wait(tid, "subgraph", command={"resume": "yes"})
    assert done["items"] == ["prepare", "sub_a", "sub_b:yes", "finish"]


async def test_time_travel_replay_and_fork(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "pipeline", input={"topic": "tt"})
    history = await client.threads.get_history(tid, limit=10)
    after_research = next(h for h in history if h["next"] == ["draft"])
    cp = after_research["checkpoint"]

    # Replay: null input from an old checkpoint re-runs the remaining nodes.
    replayed = await client.runs.wait(
        tid, "pipeline", input=None, checkpoint_id=cp["checkpoint_id"]
    )
    assert replayed["steps"] == ["researched tt", "drafted", "reviewed"]
    head = await client.threads.get_state(tid)
    assert head["values"] == replayed
    # The replay branches off the old checkpoint (LangGraph writes a "fork" checkpoint first).
    lineage = await client.threads.get_history(tid, limit=3)
    assert lineage[-1]["metadata"]["source"] == "fork"
    assert lineage[-1]["parent_checkpoint"]["checkpoint_id"] == cp["checkpoint_id"]
    assert len(await client.threads.get_history(tid, limit=20)) == 5 + 3

    # Fork: update the old checkpoint, then continue from the fork.
    forked = await client.threads.update_state(
        tid, {"topic": "forked"}, checkpoint={"checkpoint_id": cp["checkpoint_id"]}
    )
    fork_state = await client.threads.get_state(tid)
    assert fork_state["checkpoint"]["checkpoint_id"] == forked["checkpoint"]["checkpoint_id"]
    assert fork_state["parent_checkpoint"]["checkpoint_id"] == cp["checkpoint_id"]
    assert fork_state["values"]["topic"] == "forked" and fork_state["next"] == ["draft"]
    out = await client.runs.wait(tid, "pipeline", input=None)
    assert out["topic"] == "forked" and out["steps"] == ["researched tt", "drafted", "reviewed"]

    # A run starting at the head checkpoint (what useStream sends) behaves like a normal run.
    head_cp = (await client.threads.get_state(tid))["checkpoint"]
    head_cp.pop("thread_id")
    again = await client.runs.wait(tid, "pipeline", input={"topic": "next"}, checkpoint=head_cp)
    assert again["steps"] == [
        "researched tt",
        "drafted",
        "reviewed",
        "researched next",
        "drafted",
        "reviewed",
    ]


def test_sync_hitl(sync_client: SyncClient) -> None:
    tid = sync_client.threads.create()["thread_id"]
    first = sync_client.runs.wait(tid, "approval", input={"request": "invoice"})
    assert first["__interrupt__"][0]["value"]["action"] == ACTION
    assert sync_client.threads.get(tid)["status"] == "interrupted"
    out = sync_client.runs.wait(tid, "approval", command={"resume": {"type": "approve"}})
    assert out["result"] == f"done: {ACTION}"
    assert sync_client.threads.get(tid)["status"] == "idle"
