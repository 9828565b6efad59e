"""A2A (Agent2Agent) over JSON-RPC 2.0: each assistant is an agent at `/a2a/{assistant_id}`.

The wire logic, without HTTP: parsing a request, turning an A2A message into a run's input or
resume value, and rendering tasks, stream events and the agent card. Two generations of method
names are accepted: the A2A 0.3 ones (`message/send`, `message/stream`, `tasks/get`,
`tasks/cancel`; lowercase states, `kind` tags, a bare task as the send result) and the A2A 1.0
ones the current `a2a-sdk` sends (`SendMessage`, `SendStreamingMessage`, `GetTask`,
`CancelTask`; `TASK_STATE_*` and `ROLE_*` enums, the send result wrapped as `{"task": ...}`).
An answer uses the generation of the request. keel/protocols/a2a_run.py drives the runs.

A task is a run (its id is the run id of the run that started it; a resume run carries it in
its metadata as `a2a_task_id`); a context is a thread (`contextId` is the thread id).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOTIFICATION_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005

LEGACY_METHODS = {
    "message/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/cancel": "CancelTask",
}
METHODS = frozenset(LEGACY_METHODS.values())

TASK_METADATA_KEY = "a2a_task_id"  # on a resume run: the task (first run) it continues

_LEGACY_STATE = {
    "TASK_STATE_SUBMITTED": "submitted",
    "TASK_STATE_WORKING": "working",
    "TASK_STATE_COMPLETED": "completed",
    "TASK_STATE_FAILED": "failed",
    "TASK_STATE_CANCELED": "canceled",
    "TASK_STATE_INPUT_REQUIRED": "input-required",
}
_LEGACY_ROLE = {"ROLE_USER": "user", "ROLE_AGENT": "agent"}
TERMINAL = frozenset({"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED"})


class RpcError(Exception):
    """A JSON-RPC error answer: `code`, `message`, and the request id when known."""

    def __init__(self, code: int, message: str, id_: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.id = code, message, id_


@dataclasses.dataclass(frozen=True)
class Call:
    """One JSON-RPC request: its id, the method's 1.0 name, whether it came in 0.3 naming."""

    id: Any
    method: str
    legacy: bool
    params: dict[str, Any]


def parse(body: bytes) -> Call:
    """The request in `body`, or the RpcError its shape deserves (never an exception else)."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: invalid JSON") from None
    if not isinstance(msg, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: expected a JSON object")
    id_ = msg.get("id")
    if id_ is not None and (isinstance(id_, bool) or not isinstance(id_, (str, int, float))):
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'id' must be a string, number or null")
    if msg.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\"", id_)
    method = msg.get("method")
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'method' must be a string", id_)
    legacy = method in LEGACY_METHODS
    name = LEGACY_METHODS.get(method, method)
    if name not in METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", id_)
    params = msg.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: must be an object", id_)
    return Call(id_, name, legacy, params)


def answer(call: Call, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.id, "result": render(result, call.legacy)}


def error(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def render(value: Any, legacy: bool) -> Any:
    """A 1.0-shaped value in the request's generation: 0.3 gets lowercase states and roles."""
    if not legacy:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "state" and isinstance(v, str):
                out[k] = _LEGACY_STATE.get(v, v)
            elif k == "role" and isinstance(v, str):
                out[k] = _LEGACY_ROLE.get(v, v)
            else:
                out[k] = render(v, legacy)
        return out
    if isinstance(value, list):
        return [render(v, legacy) for v in value]
    return value


# ------------------------------------------------------------------ inbound messages
@dataclasses.dataclass(frozen=True)
class Inbound:
    """A `SendMessage`'s message: its parts and the task/context it continues."""

    message: dict[str, Any]
    parts: list[dict[str, Any]]
    context_id: str | None
    task_id: str | None
    return_immediately: bool
    metadata: dict[str, Any]
    history_length: int | None = None

    @property
    def texts(self) -> list[str]:
        return [p["text"] for p in self.parts if isinstance(p.get("text"), str)]

    @property
    def data(self) -> list[Any]:
        return [p["data"] for p in self.parts if "data" in p]


def inbound(params: dict[str, Any]) -> Inbound:
    """The message of a send, checked: a role, an id, parts that are text or data."""
    message = params.get("message")
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "Missing or invalid 'message' in params")
    if not message.get("messageId"):
        raise RpcError(INVALID_PARAMS, "Missing required 'messageId' in message")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise RpcError(INVALID_PARAMS, "Message must contain at least one part")
    for part in parts:
        _check_part(part)
    context_id, task_id = message.get("contextId") or None, message.get("taskId") or None
    for key, value in (("contextId", context_id), ("taskId", task_id)):
        if value is not None and not isinstance(value, str):
            raise RpcError(INVALID_PARAMS, f"{key} must be a string")
    config = _configuration(params)
    immediate = bool(config.get("returnImmediately")) or config.get("blocking") is False
    metadata = message.get("metadata") or {}
    return Inbound(message, parts, context_id, task_id, immediate,
                   metadata if isinstance(metadata, dict) else {}, config.get("historyLength"))


def _configuration(params: dict[str, Any]) -> dict[str, Any]:
    """A send's `configuration`, checked: push notifications are refused (Keel sends none)."""
    config = params.get("configuration") or {}
    if not isinstance(config, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: 'configuration' must be an object")
    if config.get("taskPushNotificationConfig") or config.get("pushNotificationConfig"):
        raise RpcError(PUSH_NOTIFICATION_NOT_SUPPORTED, "Push notifications are not supported")
    length = config.get("historyLength")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 0):
        raise RpcError(INVALID_PARAMS, "historyLength must be a non-negative integer")
    return config


def _check_part(part: Any) -> None:
    if not isinstance(part, dict):
        raise RpcError(INVALID_PARAMS, "Invalid part: expected an object")
    if "text" in part:
        if not isinstance(part["text"], str):
            raise RpcError(INVALID_PARAMS, "Invalid text part: 'text' must be a string")
        return
    if "data" in part:
        return
    if "file" in part or "url" in part or "raw" in part:
        detail = "File parts are not supported; send text or data"
        raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, detail)
    raise RpcError(INVALID_PARAMS, "Invalid part: expected a text or a data part")


def run_input(msg: Inbound, takes_messages: bool, assistant_id: str) -> dict[str, Any]:
    """A new run's input: data parts (objects) merged, text parts as one human message."""
    value: dict[str, Any] = {}
    for data in msg.data:
        if not isinstance(data, dict):
            raise RpcError(INVALID_PARAMS, "A data part starting a task must be an object")
        value.update(data)
    if msg.texts:
        if not takes_messages:
            raise RpcError(
                INVALID_PARAMS,
                f"Assistant '{assistant_id}' does not accept text parts: its input schema has "
                "no 'messages' field; send a data part with the input instead",
            )
        human = {"role": "human", "content": "\n".join(msg.texts), "id": msg.message["messageId"]}
        value["messages"] = [*value.get("messages", []), human]
    return value


def resume_value(msg: Inbound) -> Any:
    """What a message answering an input-required task resumes the run with: a data part's
    `resume` member (as the reference), else the data part's whole value, else the text."""
    data = msg.data
    if len(data) > 1:
        raise RpcError(INVALID_PARAMS, "Only one data part may answer an input-required task")
    if data:
        one = data[0]
        if isinstance(one, dict) and set(one) == {"resume"}:
            return one["resume"]
        return one
    return "\n".join(msg.texts)


# ------------------------------------------------------------------ outbound shapes
def now() -> str:
    return datetime.now(UTC).isoformat()


def text_part(text: str, legacy: bool) -> dict[str, Any]:
    return {"kind": "text", "text": text} if legacy else {"text": text}


def data_part(value: Any, legacy: bool) -> dict[str, Any]:
    if legacy and not isinstance(value, dict):
        value = {"value": value}  # A2A 0.3's DataPart holds an object
    return {"kind": "data", "data": value} if legacy else {"data": value}


def agent_message(parts: list[dict[str, Any]], task_id: str, context_id: str,
                  legacy: bool) -> dict[str, Any]:
    msg = {"messageId": str(uuid.uuid4()), "role": "ROLE_AGENT", "parts": parts,
           "taskId": task_id, "contextId": context_id}
    return {"kind": "message", **msg} if legacy else msg


def status(state: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"state": state, "timestamp": now()}
    if message is not None:
        out["message"] = message
    return out


def task(task_id: str, context_id: str, state: dict[str, Any], legacy: bool,
         artifacts: list[dict[str, Any]] | None = None,
         history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": task_id, "contextId": context_id, "status": state}
    if artifacts:
        out["artifacts"] = artifacts
    if history:
        out["history"] = history
    return {"kind": "task", **out} if legacy else out


def artifact(parts: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return {"artifactId": str(uuid.uuid4()), "name": name, "parts": parts}


def user_message(msg: Inbound, task_id: str, context_id: str, legacy: bool) -> dict[str, Any]:
    """The incoming message as it goes into the task's history."""
    echoed = {**msg.message, "taskId": task_id, "contextId": context_id, "role": "ROLE_USER"}
    return {**echoed, "kind": "message"} if legacy else echoed


def stream_event(kind: str, value: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """One streamed result: 1.0 wraps it by kind (`task`, `statusUpdate`, `artifactUpdate`);
    0.3 tags it (`kind`: task, status-update, artifact-update)."""
    if not legacy:
        return {kind: value}
    tag = {"task": "task", "statusUpdate": "status-update", "artifactUpdate": "artifact-update"}
    return {**value, "kind": tag[kind]}


def status_update(task_id: str, context_id: str, state: dict[str, Any], final: bool,
                  legacy: bool) -> dict[str, Any]:
    event: dict[str, Any] = {"taskId": task_id, "contextId": context_id, "status": state}
    if legacy:
        event["final"] = final
    return stream_event("statusUpdate", event, legacy)


def artifact_update(task_id: str, context_id: str, art: dict[str, Any],
                    legacy: bool) -> dict[str, Any]:
    event = {"taskId": task_id, "contextId": context_id, "artifact": art, "lastChunk": True}
    return stream_event("artifactUpdate", event, legacy)
