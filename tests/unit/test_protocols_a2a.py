"""keel/protocols/a2a.py: JSON-RPC parsing, the two naming generations, message parts → input
or resume value (the e2e tests in tests/e2e/test_a2a.py go through the a2a-sdk client)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from keel.protocols import a2a


def _body(value: Any) -> bytes:
    return orjson.dumps(value)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", a2a.PARSE_ERROR),
        (b"[]", a2a.INVALID_REQUEST),
        (_body({"jsonrpc": "2.0", "id": {"a": 1}, "method": "GetTask"}), a2a.INVALID_REQUEST),
        (_body({"jsonrpc": "2.0", "id": True, "method": "GetTask"}), a2a.INVALID_REQUEST),
        (_body({"id": 1, "method": "GetTask"}), a2a.INVALID_REQUEST),
        (_body({"jsonrpc": "2.0", "id": 1, "method": 3}), a2a.INVALID_REQUEST),
        (_body({"jsonrpc": "2.0", "id": 1, "method": "ListTasks"}), a2a.METHOD_NOT_FOUND),
        (_body({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": 1}), a2a.INVALID_PARAMS),
    ],
)
def test_malformed_requests(raw: bytes, code: int) -> None:
    with pytest.raises(a2a.RpcError) as caught:
        a2a.parse(raw)
    assert caught.value.code == code


def test_both_generations_name_the_same_methods() -> None:
    for legacy, name in a2a.LEGACY_METHODS.items():
        old = a2a.parse(_body({"jsonrpc": "2.0", "id": 1, "method": legacy}))
        new = a2a.parse(_body({"jsonrpc": "2.0", "id": 1, "method": name}))
        assert (old.method, old.legacy) == (name, True)
        assert (new.method, new.legacy) == (name, False)


def test_legacy_answers_have_lowercase_states_and_roles() -> None:
    value = {"status": {"state": "TASK_STATE_INPUT_REQUIRED",
                        "message": {"role": "ROLE_AGENT", "parts": []}}}
    assert a2a.render(value, True) == {
        "status": {"state": "input-required", "message": {"role": "agent", "parts": []}}
    }
    assert a2a.render(value, False) == value


def _msg(*parts: dict[str, Any]) -> a2a.Inbound:
    return a2a.inbound({"message": {"messageId": "m", "role": "user", "parts": list(parts)}})


def test_parts_become_the_input() -> None:
    msg = _msg({"kind": "data", "data": {"topic": "t"}}, {"text": "hi"})
    value = a2a.run_input(msg, True, "a")
    assert value["topic"] == "t"
    assert value["messages"] == [{"role": "human", "content": "hi", "id": "m"}]
    with pytest.raises(a2a.RpcError) as caught:
        a2a.run_input(_msg({"text": "hi"}), False, "a")
    assert caught.value.code == a2a.INVALID_PARAMS
    with pytest.raises(a2a.RpcError) as caught:
        _msg({"kind": "file", "file": {"uri": "x"}})
    assert caught.value.code == a2a.CONTENT_TYPE_NOT_SUPPORTED


def test_resume_values() -> None:
    assert a2a.resume_value(_msg({"data": {"resume": [1]}})) == [1]
    assert a2a.resume_value(_msg({"data": {"type": "approve"}})) == {"type": "approve"}
    assert a2a.resume_value(_msg({"text": "yes"}, {"text": "really"})) == "yes\nreally"
    with pytest.raises(a2a.RpcError):
        a2a.resume_value(_msg({"data": {}}, {"data": {}}))


def test_push_notifications_are_refused_and_history_length_checked() -> None:
    message = {"messageId": "m", "role": "user", "parts": [{"text": "hi"}]}
    push = {"taskPushNotificationConfig": {"url": "https://x"}}
    with pytest.raises(a2a.RpcError) as caught:
        a2a.inbound({"message": message, "configuration": push})
    assert caught.value.code == a2a.PUSH_NOTIFICATION_NOT_SUPPORTED
    with pytest.raises(a2a.RpcError) as caught:
        a2a.inbound({"message": message, "configuration": {"historyLength": -1}})
    assert caught.value.code == a2a.INVALID_PARAMS
    none = a2a.inbound({"message": message, "configuration": {"historyLength": 0}})
    assert none.history_length == 0
