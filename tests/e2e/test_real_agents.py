"""Real agents through the API as the Agent Chat UI drives them: a `create_agent` graph with a
dataclass context schema and `HumanInTheLoopMiddleware`, and a `deepagents` deep agent with
todos, files, a sub-agent and a tool under `interrupt_on` (tests/graphs/agents.py; only the
chat model is scripted). Every expectation was checked against `langgraph dev`
(KEEL_TEST_REFERENCE=1 with KEEL_TEST_REFERENCE_ENV naming a reference environment that has
langchain and deepagents)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph_sdk.schema import StreamPart

from tests.e2e.helpers import Client, collect, events_named

# What the Agent Chat UI sends with every submit (agent-server-api.md §8).
UI_STREAM: dict[str, Any] = {
    "stream_mode": ["values", "messages-tuple", "custom"],
    "stream_subgraphs": True,
    "stream_resumable": True,
    "on_disconnect": "continue",
}
REVIEW_NODE = "HumanInTheLoopMiddleware.after_model"
DECISIONS = ["approve", "edit", "reject", "respond"]
EMAIL = {"to": "bob", "body": "It is sunny in Paris for anonymous"}
SUMMARY = "Summary: otters hold hands."


def human(text: str) -> dict[str, Any]:
    """A submitted message as the UI builds it: an id and text content blocks."""
    block = {"type": "text", "text": text}
    return {"messages": [{"id": str(uuid.uuid4()), "type": "human", "content": [block]}]}


def names(parts: list[StreamPart]) -> list[str]:
    """Event names with subgraph task ids left out: `values|tools:<id>` -> `values|tools`."""
    return ["|".join(p.split(":")[0] for p in part.event.split("|")) for part in parts]


def runs_of(seq: list[str]) -> list[str]:
    """Consecutive repeats collapsed (streamed tokens arrive as runs of `messages`)."""
    return [n for i, n in enumerate(seq) if i == 0 or seq[i - 1] != n]


def merged_messages(parts: list[StreamPart], event: str) -> dict[str, str]:
    """Message text per id, chunks merged by id as `useStream` merges them."""
    out: dict[str, str] = {}
    for chunk, _meta in events_named(parts, event):
        assert chunk["id"], chunk  # a chunk without an id is dropped by the UI
        out[chunk["id"]] = out.get(chunk["id"], "") + str(chunk["content"])
    return out


def review_request(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The HITLRequest interrupt value the UI renders."""
    return {
        "action_requests": [
            {
                "name": name,
                "args": args,
                "description": f"Tool execution requires approval\n\nTool: {name}\nArgs: {args}",
            }
        ],
        "review_configs": [{"action_name": name, "allowed_decisions": DECISIONS}],
    }


async def head_checkpoint(client: Client, tid: str) -> dict[str, Any]:
    """The branch head the UI sends back with every submit (without thread_id)."""
    [head] = await client.threads.get_history(tid, limit=1)
    return {k: v for k, v in head["checkpoint"].items() if k != "thread_id"}


async def resume(client: Client, tid: str, graph: str, decision: dict[str, Any]) -> Any:
    command = {"resume": {"decisions": [decision]}}
    checkpoint = await head_checkpoint(client, tid)
    stream = client.runs.stream(
        tid, graph, input={}, command=command, checkpoint=checkpoint, **UI_STREAM
    )
    return await collect(stream)


async def interrupted_agent(client: Client, **body: Any) -> tuple[str, Any]:
    tid = (await client.threads.create(metadata={}))["thread_id"]
    out = await client.runs.wait(tid, "hitl_agent", input=human("weather, then mail bob"), **body)
    return tid, out


# ------------------------------------------------------------------ create_agent with HITL
async def test_agent_first_run_without_context(client: Client) -> None:
    extras: list[dict[str, Any]] = [{}, {"context": {}}]
    for extra in extras:
        tid, out = await interrupted_agent(client, **extra)
        assert set(out) == {"messages", "__interrupt__"}
        assert out["messages"][2]["content"] == "sunny in Paris for anonymous"
    tid, out = await interrupted_agent(client, context={"user": "ann", "unknown": 1})
    assert out["messages"][2]["content"] == "sunny in Paris for ann"
    # The request's context is the run's configurable too (checkpoint metadata shows it),
    # less the keys the context schema does not declare.
    metadata = (await client.threads.get_state(tid))["metadata"]
    assert metadata["user"] == "ann" and "unknown" not in metadata


async def test_agent_stream_until_review(client: Client) -> None:
    tid = (await client.threads.create(metadata={}))["thread_id"]
    parts = await collect(
        client.runs.stream(tid, "hitl_agent", input=human("weather, then mail bob"), **UI_STREAM)
    )
    assert names(parts) == [
        "metadata",
        *["values", "messages"],  # the model calls get_weather
        *["values", "custom", "messages"],  # the tool reports progress and answers
        *["values", "messages"],  # the model calls send_email
        *["values", "values"],  # held for review: the state, then the state and interrupt
    ]
    assert events_named(parts, "custom") == [{"progress": "looking up Paris"}]
    chunk, meta = events_named(parts, "messages")[0]
    assert chunk["type"] == "AIMessageChunk" and chunk["id"]
    assert chunk["tool_calls"][0]["name"] == "get_weather"
    assert meta["langgraph_node"] == "model" and meta["graph_id"] == "hitl_agent"
    values = events_named(parts, "values")
    assert {key for v in values for key in v} == {"messages", "__interrupt__"}
    [intr] = values[-1]["__interrupt__"]
    assert intr["value"] == review_request("send_email", EMAIL)
    assert (await client.runs.get(tid, parts[0].data["run_id"]))["status"] == "success"

    stored = {"id": intr["id"], "value": intr["value"]}
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted" and list(thread["interrupts"].values()) == [[stored]]
    assert thread["metadata"]["graph_id"] == "hitl_agent" and set(thread["values"]) == {"messages"}
    state = await client.threads.get_state(tid)
    assert state["next"] == [REVIEW_NODE] and state["interrupts"] == [stored]
    [task] = state["tasks"]
    assert (task["name"], task["path"]) == (REVIEW_NODE, ["__pregel_pull", REVIEW_NODE])
    assert task["interrupts"] == [stored] and task["state"] is None
    history = await client.threads.get_history(tid, limit=10)
    assert [(h["metadata"]["step"], h["next"]) for h in history] == [
        (4, [REVIEW_NODE]),
        (3, ["model"]),
        (2, ["tools"]),
        (1, [REVIEW_NODE]),
        (0, ["model"]),
        (-1, ["__start__"]),
    ]
    assert history[0]["tasks"][0]["interrupts"] == [stored]
    assert await client.runs.join(tid, parts[0].data["run_id"]) == {"__interrupt__": [stored]}


EDIT = {
    "type": "edit",
    "edited_action": {"name": "send_email", "args": {"to": "ann", "body": "hi"}},
}
RESUMES: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "approve"}, "Done: sent to bob: It is sunny in Paris for anonymous", " -- Keel"),
    (EDIT, "Done: Note: a human reviewer replaced this tool call", "sent to ann: hi -- Keel"),
    (
        {"type": "reject", "message": "no mail today"},
        "Not sent: User rejected the tool call for `send_email`",
        "with reason: no mail today",
    ),
]


@pytest.mark.parametrize(("decision", "starts", "ends"), RESUMES, ids=["approve", "edit", "reject"])
async def test_agent_resume(
    client: Client, decision: dict[str, Any], starts: str, ends: str
) -> None:
    tid, _ = await interrupted_agent(client)
    parts = await resume(client, tid, "hitl_agent", decision)
    run_id = parts[0].data["run_id"]
    assert runs_of(names(parts))[-3:] == ["values", "messages", "values"]
    values = events_named(parts, "values")
    # The middleware's private key stays out of values events, the wait body too.
    assert {key for v in values for key in v} == {"messages"}
    reply = values[-1]["messages"][-1]
    assert reply["type"] == "ai" and reply["content"].startswith(starts)
    assert reply["content"].endswith(ends)
    assert merged_messages(parts, "messages")[reply["id"]] == reply["content"]
    types = [m["type"] for m in values[-1]["messages"]]
    assert types == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    # The thread keeps the whole state: a join of the finished run reads it.
    assert set(thread["values"]) == {"messages", "hitl_edited_tool_calls"}
    assert await client.runs.join(tid, run_id) == thread["values"]
    state = await client.threads.get_state(tid)
    assert state["next"] == [] and state["tasks"] == [] and state["interrupts"] == []
    tid, _ = await interrupted_agent(client)
    out = await client.runs.wait(tid, "hitl_agent", command={"resume": {"decisions": [decision]}})
    assert set(out) == {"messages"} and out["messages"][-1]["content"] == reply["content"]


async def test_agent_failed_resume_leaves_no_pending_interrupt(client: Client) -> None:
    tid, _ = await interrupted_agent(client)
    command: dict[str, Any] = {"resume": {"decisions": []}}
    out = await client.runs.wait(tid, "hitl_agent", command=command, raise_error=False)
    error = {
        "error": "ValueError",
        "message": "Number of human decisions (0) does not match number of hanging tool calls (1).",
    }
    assert out == {"__error__": error}
    thread = await client.threads.get(tid)
    assert (thread["status"], thread["error"], thread["interrupts"]) == ("error", error, {})
    # The checkpoint still holds the interrupt, and the failed attempt.
    state = await client.threads.get_state(tid)
    [task] = state["tasks"]
    assert state["next"] == [REVIEW_NODE] and len(task["interrupts"]) == 1
    assert "Number of human decisions" in task["error"]
    # A new answer is accepted, but LangGraph kept the failed one for that interrupt.
    command = {"resume": {"decisions": [{"type": "approve"}]}}
    out = await client.runs.wait(tid, "hitl_agent", command=command, raise_error=False)
    assert out == {"__error__": error}


async def test_agent_per_call_review(client: Client) -> None:
    """`interrupt_mode="per_call"`: one interrupt per tool call, with a response schema that
    LangGraph checks the answer against; an invalid answer fails the run and may be retried."""
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(
        client.runs.stream(
            tid, "hitl_per_call", input=human("weather, then mail bob"), stream_mode="values"
        )
    )
    [intr] = events_named(parts, "values")[-1]["__interrupt__"]
    assert intr["value"] == {
        "type": "tool_approval",
        "name": "send_email",
        "args": EMAIL,
        "tool_call_id": "call_email",
        "description": review_request("send_email", EMAIL)["action_requests"][0]["description"],
    }
    schema = intr["response_schema"]
    assert schema["discriminator"]["propertyName"] == "type" and len(schema["oneOf"]) == 4
    thread = await client.threads.get(tid)
    assert list(thread["interrupts"].values()) == [[intr]]  # the schema is kept
    state = await client.threads.get_state(tid)
    assert state["next"] == ["tools"] and state["interrupts"] == [intr]
    assert state["tasks"][0]["path"] == ["__pregel_push", 0, False]
    bad = {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": 5}}}
    out = await client.runs.wait(
        tid, "hitl_per_call", command={"resume": {intr["id"]: bad}}, raise_error=False
    )
    assert out["__error__"]["error"] == "ValidationError"
    assert out["__error__"]["message"].startswith("2 validation errors for")
    thread = await client.threads.get(tid)
    assert (thread["status"], thread["interrupts"]) == ("error", {})
    good = {intr["id"]: {"type": "approve"}}
    out = await client.runs.wait(tid, "hitl_per_call", command={"resume": good})
    assert out["messages"][-1]["content"].startswith("Done: sent to bob")
    assert (await client.threads.get(tid))["status"] == "idle"


# ------------------------------------------------------------------ deep agent
def deep_values_keys(parts: list[StreamPart]) -> set[str]:
    return {key for p in parts if p.event.startswith("values") for key in p.data}


async def test_deep_agent_stream_and_resume(client: Client) -> None:
    tid = (await client.threads.create(metadata={}))["thread_id"]
    parts = await collect(
        client.runs.stream(tid, "deep_agent", input=human("Research otters"), **UI_STREAM)
    )
    assert runs_of(names(parts)) == [
        "metadata",
        *["values", "messages"] * 5,  # write_todos, write_file (and results), task call
        "values",
        *["values|tools", "messages|tools"] * 3,  # the sub-agent reads, then summarises
        "values|tools",
        *["messages", "values"] * 2,  # the task's result; the publish call, held for review
    ]
    assert names(parts)[-2:] == ["values", "values"]
    assert deep_values_keys(parts) == {"messages", "files", "__interrupt__"}
    [intr] = events_named(parts, "values")[-1]["__interrupt__"]
    assert intr["value"] == review_request("publish", {"title": SUMMARY})
    sub = [p for p in parts if p.event.startswith("messages|tools:")]
    assert {meta["lc_agent_name"] for _, meta in (p.data for p in sub)} == {"general-purpose"}
    assert SUMMARY in merged_messages(sub, sub[0].event).values()
    files = events_named(parts, "values")[-1]["files"]
    assert files["/notes.md"]["content"] == "Otters hold hands while they sleep."

    stored = {"id": intr["id"], "value": intr["value"]}
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted" and list(thread["interrupts"].values()) == [[stored]]
    assert set(thread["values"]) == {"messages", "files"}
    state = await client.threads.get_state(tid)
    assert state["next"] == [REVIEW_NODE] and state["tasks"][0]["interrupts"] == [stored]
    history = await client.threads.get_history(tid, limit=10)
    assert [h["metadata"]["step"] for h in history] == list(range(11, 1, -1))

    parts = await resume(client, tid, "deep_agent", {"type": "approve"})
    assert runs_of(names(parts)) == ["metadata", *["values", "messages"] * 2, "values"]
    assert deep_values_keys(parts) == {"messages", "files"}
    reply = events_named(parts, "values")[-1]["messages"][-1]
    assert reply["content"] == f"Finished: published {SUMMARY!r}"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    assert set(thread["values"]) == {"messages", "files", "hitl_edited_tool_calls"}
    assert await client.runs.join(tid, parts[0].data["run_id"]) == thread["values"]


async def test_deep_agent_review_inside_subagent(client: Client, backend: str) -> None:
    tid = (await client.threads.create(metadata={}))["thread_id"]
    request = human("Research otters; the helper publishes")
    parts = await collect(client.runs.stream(tid, "deep_agent", input=request, **UI_STREAM))
    # The sub-agent stops at its own review; the interrupt reaches the root.
    assert names(parts)[-3:] == ["values|tools", "values|tools", "values"]
    [intr] = events_named(parts, "values")[-1]["__interrupt__"]
    assert intr["value"] == review_request("publish", {"title": SUMMARY})
    stored = {"id": intr["id"], "value": intr["value"]}
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted" and list(thread["interrupts"].values()) == [[stored]]
    for state in (
        await client.threads.get_state(tid),
        await client.threads.get_state(tid, subgraphs=True),
    ):
        assert state["next"] == ["tools"] and state["interrupts"] == [stored]
        [task] = state["tasks"]
        assert (task["name"], task["path"]) == ("tools", ["__pregel_push", 0, False])
        assert task["interrupts"] == [stored] and task["state"] is None
    if backend != "reference":
        # With stream_subgraphs the reference records the sub-agent's last checkpoint as the
        # thread's: the thread then shows the sub-agent's messages (the UI's thread title) and
        # its task id. Keel keeps the root graph's, as without stream_subgraphs.
        assert list(thread["interrupts"]) == [task["id"]]
        assert thread["values"]["messages"][0]["content"] == request["messages"][0]["content"]
    parts = await resume(client, tid, "deep_agent", {"type": "approve"})
    assert runs_of(names(parts))[:3] == ["metadata", "values", "values|tools"]
    assert deep_values_keys(parts) == {"messages", "files"}
    reply = events_named(parts, "values")[-1]["messages"][-1]
    assert reply["content"] == f"Finished: Done: published {SUMMARY!r}"
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_deep_agent_wait_and_updates(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "deep_agent", input=human("Research otters"))
    assert set(out) == {"messages", "files", "__interrupt__"}
    out = await client.runs.wait(
        tid, "deep_agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    assert set(out) == {"messages", "files"}
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(
        client.runs.stream(
            tid,
            "deep_agent",
            input=human("Research otters; the helper publishes"),
            stream_mode=["values", "updates"],
            stream_subgraphs=True,
        )
    )
    sub = [n for n in names(parts) if n.endswith("|tools")]
    assert runs_of(sub) == ["values|tools", "updates|tools"] * 4 + ["values|tools"]
    updates = events_named(parts, "updates")
    assert list(updates[-1]) == ["__interrupt__"]
    assert [u for u in updates if "__interrupt__" in u] == [updates[-1]]
