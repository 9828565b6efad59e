"""The example agents behave as the README says."""

from __future__ import annotations

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
