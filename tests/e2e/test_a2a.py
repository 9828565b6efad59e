"""A2A at `/a2a/{assistant_id}` through the official `a2a-sdk` client (1.x: A2A 1.0 method
names, and its 0.3 compatibility transport for the older names): agent cards, send, stream,
multi-turn on one context, an input-required round trip, cancel; and raw JSON-RPC for what the
client never sends (malformed requests, unknown assistants and tasks)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import a2a_pb2 as pb
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from tests.support.server import KeelServer

TaskState = pb.TaskState
MISSING = "00000000-0000-0000-0000-000000000001"


async def _aid(http: httpx.AsyncClient, graph: str) -> str:
    """The graph's assistant id (the reference addresses A2A agents by assistant UUID only;
    Keel also takes a graph name, as its runs routes do)."""
    if graph == MISSING:
        return graph
    found = (await http.post("assistants/search", json={"graph_id": graph})).json()
    return str(found[0]["assistant_id"])


async def _card(http: httpx.AsyncClient, graph: str) -> pb.AgentCard:
    resolver = A2ACardResolver(http, f"{http.base_url}a2a/{await _aid(http, graph)}")
    return await resolver.get_agent_card()


@pytest.fixture
async def agent_http(server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url + "/", timeout=60.0) as raw:
        yield raw


async def _client(http: httpx.AsyncClient, graph: str, *, streaming: bool = False,
                  legacy: bool = False) -> Any:
    card = await _card(http, graph)
    if legacy:  # only the A2A 0.3 interface: the SDK's compat transport (message/send, ...)
        [iface] = card.supported_interfaces
        iface.protocol_version = "0.3"
    config = ClientConfig(streaming=streaming, httpx_client=http)
    return ClientFactory(config).create(card)


def _message(*, text: str | None = None, data: Any = None, context_id: str = "",
             task_id: str = "") -> pb.SendMessageRequest:
    part = pb.Part(text=text) if text is not None else pb.Part()
    if data is not None:
        part.data.struct_value.update(data)
    msg = pb.Message(message_id=str(uuid.uuid4()), role=pb.Role.ROLE_USER, parts=[part],
                     context_id=context_id, task_id=task_id)
    return pb.SendMessageRequest(message=msg)


async def _events(client: Any, request: pb.SendMessageRequest) -> list[pb.StreamResponse]:
    return [ev async for ev in client.send_message(request)]


async def _task(client: Any, request: pb.SendMessageRequest) -> pb.Task:
    [event] = await _events(client, request)
    assert event.HasField("task")
    task: pb.Task = event.task
    return task


def _data(part: pb.Part) -> Any:
    return MessageToDict(part)["data"]


# ------------------------------------------------------------------ agent cards
async def test_agent_cards(agent_http: httpx.AsyncClient, backend: str) -> None:
    card = await _card(agent_http, "chat_fake")
    aid = await _aid(agent_http, "chat_fake")
    assert card.name == "chat_fake"
    [iface] = card.supported_interfaces
    assert iface.protocol_binding == "JSONRPC" and iface.protocol_version == "1.0"
    assert iface.url == f"{agent_http.base_url}a2a/{aid}"
    assert card.capabilities.streaming
    [skill] = card.skills
    assert skill.id.endswith("-main") and skill.tags == ["assistant", "langgraph"]
    raw = (await agent_http.get(f"a2a/{aid}/.well-known/agent.json")).json()
    assert raw["url"] == iface.url
    assert raw["skills"][0]["metadata"]["inputSchema"]["supportsA2A"] is True
    pipeline = await _aid(agent_http, "pipeline")
    root = await agent_http.get(".well-known/agent-card.json", params={"assistant_id": pipeline})
    assert root.status_code == 200 and root.json()["name"] == "pipeline"
    assert root.json()["skills"][0]["metadata"]["inputSchema"]["supportsA2A"] is False
    missing = await agent_http.get(f"a2a/{MISSING}/.well-known/agent-card.json")
    if backend != "reference":  # the reference answers 400 {"error": {"code": -32602, ...}}
        assert missing.status_code == 404 and "detail" in missing.json()
        by_name = await agent_http.get("a2a/chat_fake/.well-known/agent-card.json")
        assert by_name.json()["skills"][0]["id"] == f"{aid}-main"


# ------------------------------------------------------------------ send, stream, multi-turn
@pytest.mark.parametrize("legacy", [False, True], ids=["v1-names", "v03-names"])
async def test_send_then_a_second_turn_sees_the_first(
    agent_http: httpx.AsyncClient, legacy: bool
) -> None:
    client = await _client(agent_http, "chat_fake", legacy=legacy)
    first = await _task(client, _message(text="hello"))
    assert first.status.state == TaskState.TASK_STATE_COMPLETED
    assert first.context_id and first.id
    assert [p.text for p in first.artifacts[0].parts] == ["noted 2 messages"]
    second = await _task(client, _message(text="again", context_id=first.context_id))
    assert second.context_id == first.context_id and second.id != first.id
    # The thread kept the first turn (human, reply, note): 3 + human + reply before this note.
    assert [p.text for p in second.artifacts[0].parts] == ["noted 5 messages"]
    got = await client.get_task(pb.GetTaskRequest(id=first.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED


async def test_stream_reports_progress_then_the_result(agent_http: httpx.AsyncClient) -> None:
    client = await _client(agent_http, "pipeline", streaming=True)
    events = await _events(client, _message(data={"topic": "tides"}))
    kinds = [ev.WhichOneof("payload") for ev in events]
    assert kinds[0] == "task" and kinds[-1] == "status_update"
    working = [ev.status_update for ev in events if ev.HasField("status_update")][:-1]
    nodes = [next(iter(_data(u.status.message.parts[0]))) for u in working]
    assert nodes == ["research", "draft", "review"]
    [art] = [ev.artifact_update.artifact for ev in events if ev.HasField("artifact_update")]
    assert _data(art.parts[0])["summary"] == "3 steps done"
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_a_streamed_task_ends_input_required(agent_http: httpx.AsyncClient) -> None:
    client = await _client(agent_http, "approval", streaming=True)
    events = await _events(client, _message(data={"request": "invoice"}))
    [art] = [ev.artifact_update.artifact for ev in events if ev.HasField("artifact_update")]
    assert art.name == "Interrupt"
    final = events[-1].status_update.status
    assert final.state == TaskState.TASK_STATE_INPUT_REQUIRED


# ------------------------------------------------------------------ input-required, cancel
async def test_input_required_then_a_message_resumes(
    agent_http: httpx.AsyncClient, backend: str
) -> None:
    client = await _client(agent_http, "approval")
    asked = await _task(client, _message(data={"request": "invoice"}))
    assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    [pending] = asked.artifacts
    assert pending.name == "Interrupt"
    assert _data(pending.parts[0])["value"]["options"] == ["approve", "edit", "reject"]
    if backend != "reference":  # Keel also asks in the status message, as A2A suggests
        assert _data(asked.status.message.parts[0]) == _data(pending.parts[0])["value"]
    answer = _message(data={"type": "approve"}, context_id=asked.context_id, task_id=asked.id)
    done = await _task(client, answer)
    assert done.id == asked.id and done.status.state == TaskState.TASK_STATE_COMPLETED
    assert _data(done.artifacts[0].parts[0])["result"] == "done: send e-mail about invoice"
    got = await client.get_task(pb.GetTaskRequest(id=asked.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED


async def test_cancel_a_running_task(agent_http: httpx.AsyncClient, backend: str) -> None:
    if backend == "reference":
        pytest.skip("the reference ignores returnImmediately: the send blocks for the whole run")
    client = await _client(agent_http, "slow")
    request = _message(data={"delay": 60})
    request.configuration.return_immediately = True
    started = await _task(client, request)
    assert started.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    canceled = await client.cancel_task(pb.CancelTaskRequest(id=started.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    run = (await agent_http.get(f"threads/{started.context_id}/runs/{started.id}/join")).json()
    assert not run.get("log")  # ended before its first step (of 60 s) finished
    got = await client.get_task(pb.GetTaskRequest(id=started.id))
    assert got.status.state == TaskState.TASK_STATE_CANCELED


# ------------------------------------------------------------------ raw JSON-RPC
async def _rpc(http: httpx.AsyncClient, body: Any, graph: str = "chat_fake") -> dict[str, Any]:
    content = body if isinstance(body, bytes) else None
    res = await http.post(f"a2a/{await _aid(http, graph)}", content=content,
                          json=None if content is not None else body)
    assert res.status_code == 200
    out: dict[str, Any] = res.json()
    return out


def _send(parts: list[Any], method: str = "message/send") -> dict[str, Any]:
    msg = {"messageId": "m1", "role": "user", "parts": parts}
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": {"message": msg}}


async def test_malformed_requests_get_json_rpc_errors(agent_http: httpx.AsyncClient) -> None:
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", -32700, "chat_fake"),
        ([1, 2], -32600, "chat_fake"),
        ({"jsonrpc": "1.0", "id": 1, "method": "GetTask"}, -32600, "chat_fake"),
        ({"jsonrpc": "2.0", "id": 1, "method": "tasks/resubscribe"}, -32601, "chat_fake"),
        ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": [1]}, -32602, "chat_fake"),
        ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": MISSING}},
         -32001, "chat_fake"),
        ({"jsonrpc": "2.0", "id": 1, "method": "CancelTask", "params": {"id": "x"}},
         -32602, "chat_fake"),
        (_send([]), -32602, "chat_fake"),
        (_send([{"kind": "file", "file": {"uri": "http://x"}}]), -32005, "chat_fake"),
        (_send([{"kind": "text", "text": "hi"}]), -32602, "pipeline"),  # no `messages` input
        (_send([{"kind": "text", "text": "hi"}]), -32602, MISSING),  # unknown assistant
    ]
    for body, code, graph in cases:
        out = await _rpc(agent_http, body, graph)
        assert out["error"]["code"] == code, (body, out)
        assert out["jsonrpc"] == "2.0"


async def test_legacy_names_answer_in_the_legacy_shape(agent_http: httpx.AsyncClient) -> None:
    out = await _rpc(agent_http, _send([{"kind": "data", "data": {"topic": "x"}}]), "pipeline")
    task = out["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"][0]["kind"] == "data"
    assert task["history"][0]["role"] == "user"
