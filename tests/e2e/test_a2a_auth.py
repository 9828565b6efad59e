"""A2A under a project's auth (tests/graphs/auth_resources.py): the request's Authorization goes
through Keel's auth like any route; a task is an ordinary run on a thread its creator owns, and
another user cannot see it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import a2a_pb2 as pb

from keel.graphs import system_assistant_id
from tests.support.auth_servers import as_user, raw_as, serve_with_auth


@pytest.fixture(scope="module")
def url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from serve_with_auth(backend, request, tmp_path_factory.mktemp(f"a2a-auth-{backend}"))


async def test_a2a_runs_are_the_callers_own(url: str) -> None:
    aid = system_assistant_id("config_echo")  # alice's search lists only her own assistants
    async with httpx.AsyncClient(timeout=30.0) as anonymous:
        res = await anonymous.get(f"{url}/a2a/{aid}/.well-known/agent-card.json")
        assert res.status_code == 401
    async with raw_as(url, "alice") as alice_http:
        card = await A2ACardResolver(alice_http, f"{url}/a2a/{aid}").get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=alice_http)).create(card)
        part = pb.Part()
        part.data.struct_value.update({"seen": {}})
        msg = pb.Message(message_id=str(uuid.uuid4()), role=pb.Role.ROLE_USER, parts=[part])
        [event] = [ev async for ev in client.send_message(pb.SendMessageRequest(message=msg))]
        task = event.task
        assert task.status.state == pb.TaskState.TASK_STATE_COMPLETED
    alice = as_user(url, "alice")
    try:  # an ordinary run on a thread alice owns
        thread = await alice.threads.get(task.context_id)
        assert (thread["metadata"] or {})["owner"] == "alice"
    finally:
        await alice.aclose()
    get = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task.id}}
    async with raw_as(url, "bob") as bob:
        out = (await bob.post(f"/a2a/{aid}", json=get)).json()
        assert out["error"]["code"] == -32001  # bob cannot see alice's task
    async with raw_as(url, "alice") as alice_http:
        out = (await alice_http.post(f"/a2a/{aid}", json=get)).json()
        assert out["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
