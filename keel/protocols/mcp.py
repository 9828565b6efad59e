"""The MCP server: Keel's assistants as MCP tools over Streamable HTTP (stateless JSON-RPC 2.0).

One tool per assistant the caller may see; `tools/call` is an ordinary stateless run with
`input=arguments`. The HTTP edge (keel/http/mcp.py) gives this module a `Host`: what it may read
and run for the request's user. Beyond the reference: progress notifications while the run
streams (an SSE answer when the client sends `_meta.progressToken` and accepts
`text/event-stream`), and `notifications/cancelled` cancelling the run of an in-flight call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from keel.errors import KeelError

log = logging.getLogger("keel.mcp")

# The versions of the MCP specification this server speaks (the official `mcp` client sends
# the latest and accepts any of these): a client's version is echoed when known, else LATEST.
SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = "2025-11-25"
PAGE_SIZE = 100  # tools per tools/list page
MAX_TOOLS = 1000  # assistants looked through to find a tool by name, as the reference

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
CANCELLED = 0  # what the official SDK answers for a request cancelled by its client

TOOL_NAME_MAX = 128
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_\-.]")
_MESSAGE_TYPES = frozenset(
    f"{kind}{suffix}"
    for kind in ("AI", "Human", "Chat", "System", "Function", "Tool")
    for suffix in ("Message", "MessageChunk")
)
_SUPPORT_TYPES = frozenset(
    {"ToolCall", "ToolCallChunk", "InvalidToolCall", "UsageMetadata", "InputTokenDetails",
     "OutputTokenDetails"}
)


class RpcError(Exception):
    """A JSON-RPC error answer: `code`, `message`, for the request `id` (None if unknown)."""

    def __init__(self, code: int, message: str, id_: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.id = code, message, id_


@dataclass(frozen=True)
class Message:
    """One JSON-RPC message from the client: a request (an id), or a notification (none)."""

    method: str | None
    id: Any
    params: dict[str, Any]
    is_response: bool = False

    @property
    def is_request(self) -> bool:
        return self.id is not None and self.method is not None


class Host(Protocol):
    """What the request's user may list and run (implemented by the HTTP edge)."""

    async def assistants(self, offset: int, limit: int) -> list[dict[str, Any]]: ...

    async def input_schema(self, assistant: dict[str, Any]) -> dict[str, Any] | None: ...

    async def start(
        self, assistant_id: str, arguments: dict[str, Any], context: Any, streamed: bool
    ) -> dict[str, Any]: ...

    async def cancel_labelled(self, label: str) -> int: ...

    async def wait(self, run: dict[str, Any]) -> Any: ...

    def events(self, run: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]: ...

    async def cancel(self, run: dict[str, Any]) -> None: ...


# ------------------------------------------------------------------ parsing
def parse(body: bytes) -> Message:
    """The client's message, or RpcError: -32700 for bad JSON, -32600 for a non-message."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON") from None
    if isinstance(raw, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported")
    if not isinstance(raw, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC object")
    id_ = raw.get("id")
    if raw.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Invalid Request: jsonrpc must be '2.0'", _id(id_))
    if id_ is not None and (isinstance(id_, bool) or not isinstance(id_, (str, int))):
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    method = raw.get("method")
    if method is None and id_ is not None and ("result" in raw or "error" in raw):
        return Message(None, id_, {}, is_response=True)
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a string", id_)
    params = raw.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object", id_)
    return Message(method, id_, params)


def _id(value: Any) -> Any:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def accepts(header: str) -> tuple[bool, bool]:
    """(JSON, SSE): which answers the client's Accept header allows (as the reference reads
    it: a substring test; `*/*` allows both)."""
    wild = "*/*" in header
    return wild or "application/json" in header, wild or "text/event-stream" in header


def answer(id_: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def error(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


# ------------------------------------------------------------------ tools
def tool_name(name: str) -> str:
    """An assistant name as an MCP tool name (`^[a-zA-Z0-9_.-]{1,128}$`), as the reference
    normalises it: whitespace runs become `_`, other invalid characters are dropped."""
    return _INVALID_CHARS.sub("", re.sub(r"\s+", "_", name.strip()))[:TOOL_NAME_MAX]


def simplify_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema for a model: a list of LangChain messages becomes a plain string (the
    user message), their definitions dropped; every inputSchema is an object schema."""
    defs = schema.get("$defs")
    if isinstance(defs, dict) and set(defs) & _MESSAGE_TYPES:
        for name in _MESSAGE_TYPES | _SUPPORT_TYPES:
            defs.pop(name, None)
        if not defs:
            schema.pop("$defs")
        props = schema.get("properties") or {}
        for key, prop in list(props.items()):
            if _is_message_list(prop):
                props[key] = {
                    "type": "string",
                    "title": prop.get("title", key),
                    "description": "The user message to send to the agent.",
                }
    schema.setdefault("type", "object")
    return schema


def _is_message_list(prop: Any) -> bool:
    if not isinstance(prop, dict) or prop.get("type") != "array":
        return False
    items = prop.get("items") or {}
    options = items.get("oneOf") or items.get("anyOf") or []
    refs = (str(o.get("$ref", "")) for o in options if isinstance(o, dict))
    return any(r.startswith("#/$defs/") and r[8:] in _MESSAGE_TYPES for r in refs)


def tool_of(assistant: dict[str, Any], name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "title": assistant["name"],
        "description": assistant.get("description")
        or f"Tool based on the {assistant['name']} assistant",
        "inputSchema": simplify_schema(schema),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": False,
            "openWorldHint": True,
        },
    }


def initialize(params: dict[str, Any], version: str) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    return {
        "protocolVersion": asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "LangGraph", "version": version},
    }


async def list_tools(host: Host, params: dict[str, Any]) -> dict[str, Any]:
    """One page of tools; `nextCursor` (a string offset) while a full page came back.
    Assistants whose name normalises to one already listed are left out, as the reference."""
    cursor = params.get("cursor")
    try:
        offset = max(int(cursor), 0) if cursor is not None else 0
    except (TypeError, ValueError):
        raise RpcError(INVALID_PARAMS, f"Invalid params: bad cursor {cursor!r}") from None
    assistants = await host.assistants(offset, PAGE_SIZE)
    tools, seen = [], set()
    for assistant in assistants:
        name = tool_name(assistant["name"])
        if not name or name in seen:
            log.warning("mcp: assistant %s left out of tools/list: duplicate tool name %r",
                        assistant["assistant_id"], name)
            continue
        seen.add(name)
        schema = await host.input_schema(assistant)
        tools.append(tool_of(assistant, name, schema or {}))
    result: dict[str, Any] = {"tools": tools}
    if len(assistants) == PAGE_SIZE:
        result["nextCursor"] = str(offset + PAGE_SIZE)
    return result


async def find_tool(host: Host, name: Any) -> str:
    """The assistant id behind tool `name` (-32602 if unknown or ambiguous)."""
    if not isinstance(name, str) or not name:
        raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
    found = [
        a["assistant_id"] for a in await host.assistants(0, MAX_TOOLS)
        if tool_name(a["name"]) == name
    ]
    if not found:
        raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
    if len(found) > 1:
        raise RpcError(INVALID_PARAMS, "Multiple tools found with the same name.")
    return str(found[0])


def call_result(value: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The reference's tools/call result: the final values' Python repr as text, or the error
    type with `isError`; Keel adds where the run lives in `_meta`."""
    meta = {"keel": {"run_id": run["run_id"], "thread_id": run["thread_id"]}}
    if isinstance(value, dict) and "__error__" in value:
        err = value["__error__"]
        text = err.get("error") if isinstance(err, dict) else str(err)
        return {"isError": True, "content": [{"type": "text", "text": str(text)}], "_meta": meta}
    return {"content": [{"type": "text", "text": repr(value)}], "_meta": meta}


@dataclass(frozen=True)
class Call:
    """A checked tools/call: the assistant, the run's input and context, a progress token."""

    assistant_id: str
    arguments: dict[str, Any]
    context: Any
    progress: str | int | None


async def check_call(host: Host, params: dict[str, Any]) -> Call:
    assistant_id = await find_tool(host, params.get("name"))
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: arguments must be an object")
    meta = params.get("_meta") or {}
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if token is not None and (isinstance(token, bool) or not isinstance(token, (str, int))):
        raise RpcError(INVALID_PARAMS, "Invalid params: progressToken must be a string or int")
    return Call(assistant_id, arguments, params.get("context"), token)


async def start(host: Host, call: Call, streamed: bool) -> dict[str, Any]:
    """The call's run; Keel's refusal of it (a 4xx) becomes -32602 with its detail."""
    try:
        return await host.start(call.assistant_id, call.arguments, call.context, streamed)
    except KeelError as exc:
        if exc.status_code >= 500:
            raise
        raise RpcError(INVALID_PARAMS, f"Invalid params: {exc.detail}") from None


async def progress(
    host: Host, run: dict[str, Any], token: str | int
) -> AsyncIterator[dict[str, Any]]:
    """A `notifications/progress` per root `updates` event of the run (its nodes' names)."""
    done = 0
    async for event, data in host.events(run):
        if event != "updates" or not isinstance(data, dict):
            continue
        done += 1
        nodes = ", ".join(str(k) for k in data)
        yield {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": done, "message": nodes},
        }


LABEL_KEY = "keel_mcp_request"  # the run's metadata key naming the call: session label + id


def label(session: str | None, request_id: Any) -> str | None:
    """What names a call in any process: its session label and request id (none without a
    session: such a call can only be cancelled by the process holding it)."""
    if not session or request_id is None:
        return None
    return f"{session}:{request_id!r}"


class InFlight:
    """The runs of this process's in-flight tools/call requests, by (caller, request id), so a
    `notifications/cancelled` from the same caller cancels the right run. A cancel for a call
    held by another process finds its run by `LABEL_KEY` (`Host.cancel_labelled`)."""

    def __init__(self) -> None:
        self.runs: dict[Hashable, tuple[Host, dict[str, Any]]] = {}
        self.cancelled: set[Hashable] = set()

    def add(self, key: Hashable, host: Host, run: dict[str, Any]) -> None:
        self.runs[key] = (host, run)

    def discard(self, key: Hashable) -> bool:
        """Forget the request; True if it was cancelled meanwhile."""
        self.runs.pop(key, None)
        if key in self.cancelled:
            self.cancelled.discard(key)
            return True
        return False

    async def cancel(self, key: Hashable) -> bool:
        entry = self.runs.get(key)
        if entry is None:
            return False
        self.cancelled.add(key)
        host, run = entry
        await host.cancel(run)
        return True
