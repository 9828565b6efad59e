"""The MCP server at `/mcp` (issue 15) through the official `mcp` client (streamable HTTP) and
`langchain-mcp-adapters` loading Keel's tools into a LangGraph agent; raw HTTP for the malformed
messages and the Accept rules. Progress notifications and cancellation are Keel-only (the
reference has neither); so are the JSON-RPC error codes for malformed messages (the reference
answers them `{"error": ...}`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from tests.e2e.helpers import Client, system_id
from tests.support.auth_servers import serve_with_auth
from tests.support.gate import Gate
from tests.support.server import KeelServer

JSON_ACCEPT = {"Accept": "application/json, text/event-stream"}


@asynccontextmanager
async def session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        yield s


def _reference(server: KeelServer) -> bool:
    return type(server).__name__ == "ReferenceServer"


async def rpc(
    http: httpx.AsyncClient, method: str, params: Any = None, id_: Any = 1, **kw: Any
) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return await http.post("/mcp", json=body, headers=kw.pop("headers", JSON_ACCEPT), **kw)


# ------------------------------------------------------------ the official client
async def test_official_client_initializes_lists_and_calls(
    server: KeelServer, client: Client
) -> None:
    async with (
        streamable_http_client(f"{server.url}/mcp") as (read, write, _),
        ClientSession(read, write) as s,
    ):
        init = await s.initialize()
        assert init.protocolVersion == types.LATEST_PROTOCOL_VERSION
        assert init.capabilities.tools is not None
        tools = {t.name: t for t in (await s.list_tools()).tools}
        # A list of messages is offered to models as one string, as the reference does.
        chat = tools["chat_fake"].inputSchema
        assert chat["properties"]["messages"]["type"] == "string"
        assert "$defs" not in chat and chat["type"] == "object"
        if not _reference(server):  # its input schema fails on the reference: not listed
            schemas = await client.assistants.get_schemas(system_id("pipeline"))
            pipeline = tools["pipeline"]
            assert pipeline.inputSchema["properties"] == schemas["input_schema"]["properties"]
            assert pipeline.description == "Tool based on the pipeline assistant"
        result = await s.call_tool("pipeline", {"topic": "mcp"})
    expected = await client.runs.wait(None, "pipeline", input={"topic": "mcp"})
    assert not result.isError
    assert [c.model_dump(exclude_none=True) for c in result.content] == [
        {"type": "text", "text": repr(expected)}
    ]


async def test_a_graph_error_is_a_tool_error(server: KeelServer, client: Client) -> None:
    async with session(server.url) as s:
        result = await s.call_tool("failing", {"value": "x"})
    expected = await client.runs.wait(None, "failing", input={"value": "x"}, raise_error=False)
    assert result.isError is True
    assert result.content[0].type == "text"
    assert result.content[0].text == expected["__error__"]["error"]


async def test_unknown_tool_and_bad_arguments_are_invalid_params(server: KeelServer) -> None:
    async with session(server.url) as s:
        with pytest.raises(McpError) as unknown:
            await s.call_tool("no_such_tool", {})
    assert unknown.value.error.code == types.INVALID_PARAMS
    assert unknown.value.error.message == "Unknown tool: no_such_tool"


async def test_progress_notifications_while_the_run_streams(server: KeelServer) -> None:
    keel_only_ref(server, "progress notifications (the reference has none)")
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with session(server.url) as s:
        result = await s.call_tool("pipeline", {"topic": "p"}, progress_callback=on_progress)
    assert seen == [(1, "research"), (2, "draft"), (3, "review")]
    assert "'summary': '3 steps done'" in result.content[0].text  # type: ignore[union-attr]


async def test_cancelled_notification_cancels_the_run(
    server: KeelServer, client: Client, gate: Gate
) -> None:
    """The run is held at step2 (the gate never opens it): only a cancel can end it, so the
    call's prompt 'Request cancelled' answer proves the run was cancelled."""
    keel_only_ref(server, "cancellation (the reference has none)")
    held = await client.assistants.create("slow", config=gate.config, name="held slow")
    gate.open("step1")
    first = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first.set()

    async with session(server.url) as s:
        request_id = s._request_id  # the id the next request (the call) gets
        call = asyncio.ensure_future(
            s.call_tool("held_slow", {"delay": 0}, progress_callback=on_progress)
        )
        await asyncio.wait_for(first.wait(), 60)
        run = await _run_of(client, held["assistant_id"])  # an ordinary run, visible
        assert run["status"] == "running"
        params = types.CancelledNotificationParams(requestId=request_id, reason="test")
        await s.send_notification(
            types.ClientNotification(types.CancelledNotification(params=params))
        )
        with pytest.raises(McpError) as cancelled:
            await asyncio.wait_for(call, 60)
    assert cancelled.value.error.message == "Request cancelled"


async def _run_of(client: Client, assistant_id: str) -> dict[str, Any]:
    """The running run of this assistant (a stateless run: its thread is busy)."""
    for thread in await client.threads.search(status="busy", limit=100):
        for run in await client.runs.list(thread["thread_id"]):
            if run["assistant_id"] == assistant_id:
                return dict(run)
    raise AssertionError(f"no run of assistant {assistant_id}")


def keel_only_ref(server: KeelServer, what: str) -> None:
    if _reference(server):
        pytest.skip(f"Keel-only: {what}")


# ------------------------------------------------------- langchain-mcp-adapters
class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that accepts tools: its replies are scripted."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


async def test_langchain_mcp_adapters_agent_calls_a_keel_tool(
    server: KeelServer, client: Client
) -> None:
    from langchain.agents import create_agent
    from langchain_mcp_adapters.client import MultiServerMCPClient

    mcp = MultiServerMCPClient(
        {"keel": {"url": f"{server.url}/mcp", "transport": "streamable_http"}}
    )
    tools = [t for t in await mcp.get_tools() if t.name == "pipeline"]
    if _reference(server):
        pytest.skip("the reference does not list `pipeline` (its input schema fails there)")
    assert len(tools) == 1
    call = {"name": "pipeline", "args": {"topic": "agents"}, "id": "call-1", "type": "tool_call"}
    model = ScriptedModel(
        messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="done")])
    )
    agent = create_agent(model, tools)
    out = await agent.ainvoke({"messages": [{"role": "user", "content": "run the pipeline"}]})
    replies = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    expected = await client.runs.wait(None, "pipeline", input={"topic": "agents"})
    assert len(replies) == 1
    text = replies[0].content
    if isinstance(text, list):
        text = "".join(b["text"] for b in text if isinstance(b, dict))
    assert text == repr(expected)
    assert out["messages"][-1].content == "done"


# ------------------------------------------------------------------ raw HTTP
async def test_transport_rules(server: KeelServer, http: httpx.AsyncClient) -> None:
    assert (await http.get("/mcp")).status_code == 405
    # Nothing to end: Keel answers a no-op 200, the reference a 404.
    assert (await http.delete("/mcp")).status_code == (404 if _reference(server) else 200)
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=note, headers=JSON_ACCEPT)).status_code == 202
    answer = {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert (await http.post("/mcp", json=answer, headers=JSON_ACCEPT)).status_code == 202
    res = await rpc(http, "ping", id_=0)
    assert res.status_code == 200 and res.json() == {"jsonrpc": "2.0", "id": 0, "result": {}}
    for accept in ("application/json", "text/event-stream"):
        assert (await rpc(http, "ping", headers={"Accept": accept})).status_code == 200
    assert (await rpc(http, "ping", headers={"Accept": "text/html"})).status_code == 400
    res = await rpc(http, "no/such", id_="x")
    assert res.status_code == 200
    assert res.json()["error"]["code"] == -32601 and res.json()["id"] == "x"


async def test_protocol_version_negotiation(http: httpx.AsyncClient) -> None:
    for asked, answered in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ]:
        res = await rpc(http, "initialize", {"protocolVersion": asked, "capabilities": {}})
        assert res.json()["result"]["protocolVersion"] == answered
        assert res.json()["result"]["serverInfo"]["name"] == "LangGraph"


async def test_tools_list_pages_with_a_cursor(http: httpx.AsyncClient) -> None:
    listed = (await rpc(http, "tools/list")).json()["result"]
    assert "nextCursor" not in listed  # fewer than a page of assistants
    names = [t["name"] for t in listed["tools"]]
    assert "chat_fake" in names and len(names) == len(set(names))
    far = (await rpc(http, "tools/list", {"cursor": "1000"})).json()["result"]
    assert far["tools"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b"[]", -32600),
        (b'"ping"', -32600),
        (b'{"id": 1, "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}', -32602),
    ],
)
async def test_malformed_messages_get_json_rpc_errors(
    server: KeelServer, http: httpx.AsyncClient, body: bytes, code: int
) -> None:
    keel_only_ref(server, 'JSON-RPC error codes (the reference answers 400 {"error": ...})')
    res = await http.post("/mcp", content=body, headers=JSON_ACCEPT)
    assert res.status_code == 400
    assert res.json()["jsonrpc"] == "2.0" and res.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "params",
    [
        {"name": "pipeline", "arguments": [1]},
        {"name": 3},
        {"arguments": {}},
        {"name": "pipeline", "arguments": {}, "context": "not an object"},
    ],
)
async def test_bad_tool_call_params_are_invalid_params(
    server: KeelServer, http: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    keel_only_ref(server, "invalid params checked (the reference answers some with a 500)")
    res = await rpc(http, "tools/call", params)
    assert res.status_code == 200 and res.json()["error"]["code"] == -32602, res.text


# ------------------------------------------------------------------ auth
@pytest.fixture(scope="module")
def auth_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from serve_with_auth(backend, request, Path(tmp_path_factory.mktemp("mcp-auth")))


async def test_under_auth_each_user_sees_and_calls_only_their_tools(
    auth_url: str, backend: str
) -> None:
    def as_(name: str) -> dict[str, str]:
        return {**JSON_ACCEPT, "Authorization": f"Bearer {name}"}

    async with httpx.AsyncClient(base_url=auth_url, timeout=60) as http:
        for who in ("alice", "bob"):
            made = await http.post(
                "/assistants", json={"graph_id": "config_echo", "name": f"{who} echo"},
                headers=as_(who),
            )
            assert made.status_code == 200, made.text
        assert (await rpc(http, "ping", headers=JSON_ACCEPT)).status_code == 401
        listed = await rpc(http, "tools/list", headers=as_("alice"))
        if backend != "reference":  # config_echo's input schema fails there: not listed
            assert [t["name"] for t in listed.json()["result"]["tools"]] == ["alice_echo"]
        stolen = await rpc(http, "tools/call", {"name": "bob_echo"}, headers=as_("alice"))
        assert stolen.json()["error"]["message"] == "Unknown tool: bob_echo"
        own = await rpc(http, "tools/call", {"name": "alice_echo"}, headers=as_("alice"))
        assert own.json()["result"].get("isError") is not True, own.text

