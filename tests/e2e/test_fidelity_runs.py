"""Run execution as the reference executes runs: runtime context defaults, values narrowed to
the output schema, interrupts (run `success`, thread `interrupted`, one closing values event),
the wait/join body, which error messages reach clients, the `events` / `debug` / `messages`
streams, and the server keys in run metadata. Every expectation was checked against
`langgraph dev` (KEEL_TEST_REFERENCE=1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import BadRequestError

from keel import __version__
from tests.e2e.helpers import Client, collect, events_named

QUESTION = {"question": "why?"}
PRIVATE_STATE = {"question": "why?", "scratch": ["thinking about why?"], "answer": "1 notes"}
SERVER_KEYS = {
    "langgraph_version",
    "langgraph_api_version",
    "langgraph_plan",
    "langgraph_host",
    "langgraph_api_url",
}


async def _thread(client: Client) -> str:
    return str((await client.threads.create())["thread_id"])


async def test_run_without_context_gets_the_schema_defaults(client: Client) -> None:
    extras: list[dict[str, Any]] = [{}, {"context": {}}]
    for extra in extras:
        out = await client.runs.wait(
            await _thread(client), "context_dataclass", input={"name": "n"}, **extra
        )
        assert out == {"name": "n", "reply": "hello anonymous (n)"}
    # Keys the context schema does not declare are dropped, not passed to the dataclass.
    out = await client.runs.wait(
        await _thread(client),
        "context_dataclass",
        input={"name": "n"},
        context={"user": "ann", "unknown": 1},
    )
    assert out == {"name": "n", "reply": "hello ann (n)"}


async def test_context_and_configurable_mirror_each_other(client: Client) -> None:
    async def reply(assistant: str, **body: Any) -> str:
        tid = await _thread(client)
        out = await client.runs.wait(tid, assistant, input={"name": "n"}, **body)
        return str(out["reply"])

    graph = "context_configurable"
    # The request's context is the run's configurable too, less keys the schema lacks.
    context = {"user": "ann", "unknown": 1}
    assert await reply(graph, context=context) == "context hello ann; configurable ann None None"
    # A request with configurable only: it is the context too, and keeps every key.
    config = {"configurable": {"user": "bob", "unknown": 2}}
    assert await reply(graph, config=config) == "context hello bob; configurable bob None 2"
    # An assistant's context is its configurable too (and the other way round); a run merges
    # the request's into both.
    assistant = await client.assistants.create(graph, context={"greeting": "hey"})
    assert assistant["config"] == {"configurable": {"greeting": "hey"}}
    aid = assistant["assistant_id"]
    assert await reply(aid, config=config) == "context hey bob; configurable bob hey 2"
    assert await reply(aid, context=context) == "context hey ann; configurable ann hey None"
    other = await client.assistants.create(graph, config={"configurable": {"greeting": "yo"}})
    assert other["context"] == {"greeting": "yo"}
    assert await reply(other["assistant_id"]) == "context yo anonymous; configurable None yo None"
    patched = await client.assistants.update(aid, context={"user": "cy"})
    assert (patched["config"], patched["context"]) == (
        {"configurable": {"user": "cy"}},
        {"user": "cy"},
    )
    with pytest.raises(BadRequestError):
        await client.assistants.create(graph, config=config, context=context)


async def test_values_hold_the_output_schema_only(client: Client) -> None:
    tid = await _thread(client)
    parts = await collect(
        client.runs.stream(tid, "private", input=QUESTION, stream_mode=["values", "updates"])
    )
    # `scratch` is state but not output: values events leave it out, and so do updates of
    # nodes that wrote nothing else.
    assert events_named(parts, "values") == [QUESTION, {**QUESTION, "answer": "1 notes"}]
    assert events_named(parts, "updates") == [
        {"think": None},
        {"ask": None},
        {"answer": {"answer": "1 notes"}},
    ]
    # The thread and its state keep the whole state; a join of the finished run reads it.
    assert (await client.threads.get(tid))["values"] == PRIVATE_STATE
    assert (await client.threads.get_state(tid))["values"] == PRIVATE_STATE
    run_id = parts[0].data["run_id"]
    assert await client.runs.join(tid, run_id) == PRIVATE_STATE
    out = await client.runs.wait(await _thread(client), "private", input=QUESTION)
    assert out == {**QUESTION, "answer": "1 notes"}
    stateless = await client.runs.wait(None, "private", input=QUESTION)
    assert stateless == {**QUESTION, "answer": "1 notes"}


async def test_interrupt_ends_the_run_with_success(client: Client) -> None:
    tid = await _thread(client)
    parts = await collect(
        client.runs.stream(
            tid, "private", input={**QUESTION, "pause": True}, stream_mode=["values", "updates"]
        )
    )
    [intr] = events_named(parts, "updates")[-1]["__interrupt__"]
    assert intr["value"] == {"confirm": "why?"} and intr["response_schema"] is None
    # One closing values event: the output channels plus the interrupt.
    assert events_named(parts, "values") == [QUESTION, {**QUESTION, "__interrupt__": [intr]}]
    assert (await client.runs.get(tid, parts[0].data["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    stored = {"id": intr["id"], "value": intr["value"]}  # no unset response_schema here
    assert thread["status"] == "interrupted"
    assert list(thread["interrupts"].values()) == [[stored]]
    assert thread["values"] == {**QUESTION, "pause": True, "scratch": ["thinking about why?"]}
    state = await client.threads.get_state(tid)
    assert state["interrupts"] == [stored] and state["tasks"][0]["interrupts"] == [stored]
    # wait gives the interrupt values event; join of the finished run the thread's interrupts.
    assert await client.runs.join(tid, parts[0].data["run_id"]) == {"__interrupt__": [stored]}
    out = await client.runs.wait(
        await _thread(client), "private", input={**QUESTION, "pause": True}
    )
    assert out["question"] == "why?" and set(out) == {"question", "__interrupt__"}


async def test_breakpoint_leaves_values_alone(client: Client) -> None:
    tid = await _thread(client)
    parts = await collect(
        client.runs.stream(
            tid,
            "pipeline",
            input={"topic": "b"},
            interrupt_after=["research"],
            stream_mode=["values", "updates"],
        )
    )
    done = {"topic": "b", "steps": ["researched b"]}
    assert events_named(parts, "values") == [{"topic": "b", "steps": []}, done]
    assert events_named(parts, "updates")[-1] == {"__interrupt__": []}
    assert (await client.runs.get(tid, parts[0].data["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted" and thread["interrupts"] == {}
    assert await client.runs.join(tid, parts[0].data["run_id"]) == done
    out = await client.runs.wait(
        await _thread(client), "pipeline", input={"topic": "b"}, interrupt_before=["draft"]
    )
    assert out == done


async def test_wait_body_follows_the_published_events(http: httpx.AsyncClient) -> None:
    async def wait(graph: str, body: dict[str, Any]) -> Any:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        res = await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": graph, **body})
        assert res.status_code == 200, res.text
        return res.json()

    approval = {"input": {"request": "r"}}
    # Interrupts seen in several root events are merged, each copy kept.
    both = await wait("approval", {**approval, "stream_mode": ["values", "updates"]})
    [first, second] = both["__interrupt__"]
    assert set(both) == {"__interrupt__"} and first == second
    assert first["value"]["action"] == "send e-mail about r"
    updates_only = await wait("approval", {**approval, "stream_mode": ["updates"]})
    [only] = updates_only["__interrupt__"]
    assert set(updates_only) == {"__interrupt__"} and only["value"] == first["value"]
    # No state published at all: the thread's values, whole.
    assert await wait("private", {"input": QUESTION, "stream_mode": ["updates"]}) == PRIVATE_STATE


async def test_error_messages_follow_the_exception_type(client: Client) -> None:
    async def error_of(graph: str, body: dict[str, Any]) -> Any:
        out = await client.runs.wait(await _thread(client), graph, raise_error=False, **body)
        return out["__error__"]

    # A subclass of a safe type shows its message; AssertionError is not safe.
    assert await error_of("failing", {"input": {"kind": "subclass"}}) == {
        "error": "QuotaError",
        "message": "quota of 3 calls used up",
    }
    assert await error_of("failing", {"input": {"kind": "assert"}}) == {
        "error": "AssertionError",
        "message": "An internal error occurred",
    }
    # A TypedDict context schema gets no defaults: the node's AttributeError is shown.
    assert await error_of("context_typeddict", {"input": {}}) == {
        "error": "AttributeError",
        "message": "'NoneType' object has no attribute 'get'",
    }
    tid = await _thread(client)
    parts = await collect(client.runs.stream(tid, "failing", input={"kind": "subclass"}))
    error = {"error": "QuotaError", "message": "quota of 3 calls used up"}
    assert parts[-1].event == "error" and parts[-1].data == error
    thread = await client.threads.get(tid)
    assert thread["status"] == "error" and thread["error"] == error
    assert thread["values"] == {"kind": "subclass", "value": "ok ran"}
    assert await client.runs.join(tid, parts[0].data["run_id"]) == {"__error__": error}
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "error"


async def test_events_stream(client: Client) -> None:
    tid = await _thread(client)
    parts = await collect(
        client.runs.stream(tid, "pipeline", input={"topic": "e"}, stream_mode="events")
    )
    assert {p.event for p in parts} == {"metadata", "events"}
    events = events_named(parts, "events")
    nodes = [
        (kind, node)
        for node in ("research", "draft", "review")
        for kind in ("on_chain_start", "on_chain_stream", "on_chain_end")
    ]
    # The graph's own stream chunks are not sent as events.
    expected = [("on_chain_start", "pipeline"), *nodes, ("on_chain_end", "pipeline")]
    assert [(e["event"], e["name"]) for e in events] == expected
    # The root event is the run itself.
    assert events[0]["run_id"] == parts[0].data["run_id"] == events[-1]["run_id"]
    assert events[-1]["data"]["output"]["summary"] == "3 steps done"
    with_values = await collect(
        client.runs.stream(tid, "pipeline", input={"topic": "f"}, stream_mode=["events", "values"])
    )
    names = [p.event for p in with_values]
    assert names.count("values") == 4 and names.count("events") == len(expected)


async def test_debug_stream(client: Client) -> None:
    parts = await collect(
        client.runs.stream(
            await _thread(client), "pipeline", input={"topic": "d"}, stream_mode="debug"
        )
    )
    debug = events_named(parts, "debug")
    assert [(d["type"], d["step"]) for d in debug] == [
        ("checkpoint", -1),
        ("checkpoint", 0),
        *[(kind, step) for step in (1, 2, 3) for kind in ("task", "task_result", "checkpoint")],
    ]
    # A subgraph task points at the subgraph's checkpoint instead of carrying a config.
    parts = await collect(
        client.runs.stream(
            await _thread(client), "subgraph", input={"items": []}, stream_mode="debug"
        )
    )
    payloads = [d["payload"] for d in events_named(parts, "debug") if d["type"] == "checkpoint"]
    [task] = next(p["tasks"] for p in payloads if p["next"] == ["child"])
    assert "state" not in task
    assert task["checkpoint"]["checkpoint_ns"].startswith("child:")
    assert set(task["checkpoint"]) == {"thread_id", "checkpoint_ns"}


async def test_messages_partial_is_a_whole_message(client: Client) -> None:
    parts = await collect(
        client.runs.stream(
            await _thread(client),
            "chat_fake",
            input={"messages": [{"role": "user", "content": "hi"}]},
            stream_mode="messages",
        )
    )
    partial = events_named(parts, "messages/partial")
    assert {p[0]["type"] for p in partial} == {"ai"}
    assert partial[-1][0]["content"] == "you said hi"


async def test_run_metadata_carries_server_keys(client: Client, backend: str) -> None:
    parts = await collect(
        client.runs.stream(
            await _thread(client),
            "chat_fake",
            input={"messages": [{"role": "user", "content": "hi"}]},
            stream_mode="messages-tuple",
        )
    )
    metadata = [meta for _, meta in events_named(parts, "messages")]
    assert metadata and all(set(meta) >= SERVER_KEYS for meta in metadata)
    assert {meta["langgraph_host"] for meta in metadata} == {"self-hosted"}
    if backend != "reference":  # Keel's own values
        assert {meta["langgraph_api_version"] for meta in metadata} == {__version__}
        assert {meta["langgraph_plan"] for meta in metadata} == {"developer"}


async def test_without_auth_runs_carry_no_user_and_a_body_cannot_give_one(
    client: Client,
) -> None:
    """Without auth the user keys are null / "" / [] in every run, whatever the request says
    (the reference drops them from `config.configurable` and `context`)."""
    forged = {"langgraph_auth_user_id": "mallory", "langgraph_auth_permissions": ["all"]}
    for extra in ({}, {"config": {"configurable": forged}}, {"context": forged}):
        run = await client.runs.create(None, "config_echo", input={}, **extra)
        configurable = run["kwargs"]["config"]["configurable"]
        assert configurable["langgraph_auth_user"] is None
        assert configurable["langgraph_auth_user_id"] == ""
        assert configurable["langgraph_auth_permissions"] == []
    seen = await client.runs.wait(None, "config_echo", input={}, context=forged)
    assert seen["seen"]["langgraph_auth_user_id"] == ""
