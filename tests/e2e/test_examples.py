"""The example agents behave as the README says."""

from __future__ import annotations

import uuid

from tests.e2e.helpers import Client


async def test_chat_without_a_model_explains_how_to_configure_one(client: Client) -> None:
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "hi"}]}
    )
    reply = out["messages"][-1]
    assert reply["type"] == "ai"
    assert "KEEL_MODEL" in reply["content"] and "OPENAI_BASE_URL" in reply["content"]


async def test_pipeline_streams_custom_progress(client: Client) -> None:
    thread = await client.threads.create()
    progress = [
        part.data["progress"]
        async for part in client.runs.stream(
            thread["thread_id"], "pipeline", input={"topic": "t"}, stream_mode="custom"
        )
        if part.event == "custom"
    ]
    assert progress == [0.33, 0.66, 1.0]


async def test_approval_edit_changes_the_action(client: Client) -> None:
    thread = await client.threads.create()
    first = await client.runs.wait(thread["thread_id"], "approval", input={"request": "refund"})
    assert first["__interrupt__"][0]["value"]["action"] == "send e-mail about refund"
    done = await client.runs.wait(
        thread["thread_id"],
        "approval",
        command={"resume": {"type": "edit", "action": "call the customer"}},
    )
    assert done["decision"] == "edited" and done["result"] == "done: call the customer"


async def test_memory_graph_shares_the_store_with_the_api(client: Client) -> None:
    """The graph's writes are visible through /store, and items put through /store are what
    the graph's semantic search finds (async node with `store`, sync node with get_store())."""
    user = uuid.uuid4().hex
    config = {"configurable": {"user_id": user}}
    facts = ["My cat is called Miso", "I fly to Lisbon on Friday", "I am allergic to peanuts"]
    for fact in facts[:2]:
        await client.runs.wait(None, "memory", input={"remember": fact}, config=config)
    stored = await client.store.search_items(["memories", user], limit=10)
    assert sorted(i["value"]["text"] for i in stored["items"]) == sorted(facts[:2])
    await client.store.put_item(["memories", user], "peanuts", {"text": facts[2]})
    out = await client.runs.wait(
        None, "memory", input={"question": "which food am I allergic to?"}, config=config
    )
    assert out["answers"][0] == facts[2]
    out = await client.runs.wait(
        None, "memory", input={"question": "when is my flight to Lisbon?"}, config=config
    )
    assert out["answers"][0] == facts[1]
    other = await client.runs.wait(
        None, "memory", input={"question": "cat"}, config={"configurable": {"user_id": "x"}}
    )
    assert facts[0] not in other["answers"]
