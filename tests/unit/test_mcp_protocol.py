"""keel/protocols/mcp.py without a server: JSON-RPC parsing, tool names, input schemas,
results, and the in-flight calls a cancel finds."""

from __future__ import annotations

from typing import Any

import pytest

from keel.protocols import mcp


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", mcp.PARSE_ERROR),
        (b"[]", mcp.INVALID_REQUEST),
        (b"1", mcp.INVALID_REQUEST),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', mcp.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', mcp.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1}', mcp.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": ""}', mcp.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": 3}', mcp.INVALID_PARAMS),
    ],
)
def test_malformed_messages_raise_their_json_rpc_code(body: bytes, code: int) -> None:
    with pytest.raises(mcp.RpcError) as err:
        mcp.parse(body)
    assert err.value.code == code


def test_requests_notifications_and_responses() -> None:
    req = mcp.parse(b'{"jsonrpc": "2.0", "id": 0, "method": "ping"}')
    assert req.is_request and req.id == 0 and req.params == {}
    note = mcp.parse(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    assert not note.is_request and note.method == "notifications/initialized"
    answer = mcp.parse(b'{"jsonrpc": "2.0", "id": "a", "result": {}}')
    assert answer.is_response and not answer.is_request


def test_accept_header() -> None:
    assert mcp.accepts("application/json, text/event-stream") == (True, True)
    assert mcp.accepts("text/event-stream") == (False, True)
    assert mcp.accepts("*/*") == (True, True)
    assert mcp.accepts("text/html") == (False, False)


@pytest.mark.parametrize(
    ("name", "tool"),
    [
        ("pipeline", "pipeline"),
        ("  my  agent\tv2 ", "my_agent_v2"),
        ("ça/va?", "ava"),
        ("x" * 200, "x" * 128),
    ],
)
def test_tool_names_are_normalised_as_the_reference(name: str, tool: str) -> None:
    assert mcp.tool_name(name) == tool


def test_a_message_list_becomes_a_string_for_models() -> None:
    ref = {"$ref": "#/$defs/HumanMessage"}
    schema: dict[str, Any] = {
        "$defs": {"HumanMessage": {}, "AIMessage": {}, "Other": {"type": "string"}},
        "properties": {"messages": {"type": "array", "items": {"oneOf": [ref]}, "title": "M"}},
    }
    out = mcp.simplify_schema(schema)
    assert out["$defs"] == {"Other": {"type": "string"}}
    assert out["properties"]["messages"]["type"] == "string"
    assert out["type"] == "object"


def test_versions_are_negotiated() -> None:
    for version in mcp.SUPPORTED_VERSIONS:
        assert mcp.initialize({"protocolVersion": version}, "1")["protocolVersion"] == version
    assert mcp.initialize({"protocolVersion": "2000-01-01"}, "1")["protocolVersion"] == (
        mcp.LATEST_VERSION
    )
    assert mcp.initialize({}, "1")["protocolVersion"] == mcp.LATEST_VERSION


def test_results_as_the_reference_words_them() -> None:
    run = {"run_id": "r", "thread_id": "t"}
    ok = mcp.call_result({"a": 1}, run)
    assert ok["content"] == [{"type": "text", "text": "{'a': 1}"}] and "isError" not in ok
    failed = mcp.call_result({"__error__": {"error": "ValueError", "message": "x"}}, run)
    assert failed["isError"] is True and failed["content"][0]["text"] == "ValueError"
    assert failed["_meta"] == {"keel": {"run_id": "r", "thread_id": "t"}}


class _Host:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def cancel(self, run: dict[str, Any]) -> None:
        self.cancelled.append(run["run_id"])


async def test_in_flight_calls_are_cancelled_by_their_own_key() -> None:
    flight, host = mcp.InFlight(), _Host()
    flight.add(("s1", None, 2), host, {"run_id": "a"})  # type: ignore[arg-type]
    flight.add(("s2", None, 2), host, {"run_id": "b"})  # type: ignore[arg-type]
    assert await flight.cancel(("s1", None, 2))
    assert not await flight.cancel(("s3", None, 2))
    assert host.cancelled == ["a"]
    assert flight.discard(("s1", None, 2)) is True
    assert flight.discard(("s2", None, 2)) is False
    assert flight.runs == {}
