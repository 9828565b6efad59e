"""The commands of `POST /threads/{id}/commands` (and of a WebSocket's inbound frames).

A command is `{id, method, params}`; the answer `{type: "success", id, result}` or
`{type: "error", id, error: <code>, message}`. Creating runs and authorizing are the HTTP
layer's (keel/http/threadstream.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langchain_protocol import AgentTreeNode, CommandResponse, ErrorResponse

from keel.errors import BadRequest, Conflict, Forbidden, InvalidInput, KeelError, NotFound
from keel.storage.base import Storage
from keel.storage.tx import Row
from keel.streams import TERMINAL

from .channels import parse_subscription
from .events import PROTOCOL_MODE

Waiter = Callable[[Row], Awaitable[Any]]  # returns once the run has ended
RESPOND_WAIT_SECONDS = 10.0
COMMANDS = (
    "run.start",
    "input.respond",
    "agent.getTree",
    "subscription.subscribe",
    "subscription.unsubscribe",
    "subscription.reconnect",
)
RUN_START_KEYS = {"assistant_id", "input", "config", "metadata", "langsmith_tracer"}
RUN_START_KEYS |= {"multitaskStrategy", "multitask_strategy", "context"}


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Command:
    id: int
    method: str
    params: Row


def error(command_id: Any, code: str, message: str) -> ErrorResponse:
    cid = command_id if isinstance(command_id, int) and not isinstance(command_id, bool) else None
    return {"type": "error", "id": cid, "error": code, "message": message}  # type: ignore[typeddict-item]


def success(command_id: int, result: Any) -> CommandResponse:
    return {"type": "success", "id": command_id, "result": result}


def parse_command(body: Any) -> Command:
    """The command in a request body; CommandError(invalid_argument) when malformed."""
    if not isinstance(body, dict):
        raise CommandError("invalid_argument", "a command is an object {id, method, params}")
    cid, method, params = body.get("id"), body.get("method"), body.get("params", {})
    if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
        raise CommandError("invalid_argument", "id: expected a non-negative integer")
    if not isinstance(method, str) or not method:
        raise CommandError("invalid_argument", "method: expected a command name")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CommandError("invalid_argument", "params: expected an object")
    return Command(cid, method, params)


def code_of(exc: KeelError) -> str:
    if isinstance(exc, Forbidden):
        return "permission_denied"
    if isinstance(exc, (BadRequest, InvalidInput, NotFound, Conflict)):
        return "invalid_argument"
    return "unknown_error"


# ---------------------------------------------------------------- run.start
def run_start_body(params: Row) -> Row:
    """The run-create body of a `run.start`: the protocol's defaults (lazy thread, enqueue,
    every stream mode with subgraphs, resumable)."""
    unknown = set(params) - RUN_START_KEYS
    if unknown:
        raise CommandError("invalid_argument", f"run.start: unknown params {sorted(unknown)}")
    assistant_id = params.get("assistant_id")
    if not isinstance(assistant_id, str) or not assistant_id:
        raise CommandError("invalid_argument", "run.start: assistant_id is required")
    body: Row = {
        "assistant_id": assistant_id,
        "input": params.get("input"),
        "if_not_exists": "create",
        "multitask_strategy": params.get("multitaskStrategy")
        or params.get("multitask_strategy")
        or "enqueue",
        "stream_subgraphs": True,
        "stream_resumable": True,
    }
    for key in ("config", "metadata", "context", "langsmith_tracer"):
        if params.get(key) is not None:
            body[key] = params[key]
    return body


def named_checkpoint(thread_id: str, body: Row) -> Row | None:
    """The checkpoint a `run.start` names (config.configurable's `checkpoint_id`), if any."""
    conf = (body.get("config") or {}).get("configurable") or {}
    if conf.get("checkpoint_id") is None:
        return None
    return {
        "thread_id": thread_id,
        "checkpoint_ns": str(conf.get("checkpoint_ns") or ""),
        "checkpoint_id": str(conf["checkpoint_id"]),
    }


async def require_checkpoint(storage: Storage, wanted: Row) -> None:
    """`no_such_checkpoint` unless the checkpoint `wanted` (from `named_checkpoint`) exists."""
    if await storage.checkpointer.aget_tuple({"configurable": wanted}) is None:
        raise CommandError(
            "no_such_checkpoint",
            f"thread {wanted['thread_id']}: no checkpoint {wanted['checkpoint_id']}",
        )


def protocol_run(data: Row) -> Row:
    """A validated run-create body made a v3 run (the worker's translator is chosen by it)."""
    return {**data, "stream_mode": [PROTOCOL_MODE]}


# ------------------------------------------------------------- input.respond
def _responses(params: Row) -> list[Row]:
    if "responses" in params:
        items = params["responses"]
        if not isinstance(items, list) or not items:
            raise CommandError("invalid_argument", "responses: expected a non-empty list")
    else:
        items = [params]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("interrupt_id"), str):
            raise CommandError("invalid_argument", "each response needs an interrupt_id")
        if "response" not in item:
            raise CommandError("invalid_argument", "each response needs a response")
    return items


async def _settled(storage: Storage, thread_id: str, wait: Waiter) -> tuple[Row | None, list[Row]]:
    """The thread and its latest run, once that run has ended: the client may answer an
    `input.requested` event before the run that sent it is recorded (waited for, boundedly)."""
    async with storage.read() as tx:
        # The run first: once it reads terminal, the thread (settled in the same transaction)
        # read next is settled too, whatever the isolation level.
        runs = await tx.list_runs(thread_id, None, 1, 0)
        thread = await tx.get_thread(thread_id)
    if not runs or runs[0]["status"] in TERMINAL:
        return thread, runs
    try:
        await asyncio.wait_for(wait(runs[0]), RESPOND_WAIT_SECONDS)
    except TimeoutError:
        raise CommandError("no_such_run", f"thread {thread_id}: its run is still running") from None
    async with storage.read() as tx:
        runs = await tx.list_runs(thread_id, None, 1, 0)
        return await tx.get_thread(thread_id), runs


async def respond_body(storage: Storage, thread_id: str, params: Row, wait: Waiter) -> Row:
    """The run-create body that resumes the thread's pending interrupts named in `params`."""
    items = _responses(params)
    thread, runs = await _settled(storage, thread_id, wait)
    if thread is None or not runs or thread["status"] != "interrupted":
        raise CommandError("no_such_run", f"thread {thread_id} has no interrupted run")
    pending = {
        str(i.get("id"))
        for items_of_task in (thread.get("interrupts") or {}).values()
        for i in items_of_task
    }
    for item in items:
        if item["interrupt_id"] not in pending:
            raise CommandError("no_such_interrupt", f"no pending interrupt {item['interrupt_id']}")
    command: Row = {"resume": {item["interrupt_id"]: item["response"] for item in items}}
    for key in ("update", "goto"):
        if params.get(key) is not None:
            command[key] = params[key]
    body: Row = {
        "assistant_id": runs[0]["assistant_id"],
        "command": command,
        "multitask_strategy": "enqueue",
        "stream_subgraphs": True,
        "stream_resumable": True,
    }
    for key in ("config", "metadata"):
        if params.get(key) is not None:
            body[key] = params[key]
    return body


# ------------------------------------------------------------- agent.getTree
AGENT_STATUS = {"pending": "started", "running": "running", "success": "completed"}


async def agent_tree(storage: Storage, thread_id: str, params: Row) -> Row:
    namespace = params.get("namespace")
    if namespace not in (None, []):  # the tree Keel gives has its root only
        raise CommandError("no_such_namespace", f"no agent at namespace {namespace!r}")
    run_id = params.get("run_id")
    async with storage.read() as tx:
        if run_id is not None:
            run = await tx.get_run(str(run_id))
            runs = [run] if run is not None and run["thread_id"] == thread_id else []
        else:
            runs = await tx.list_runs(thread_id, None, 1, 0)
        thread = await tx.get_thread(thread_id)
    if not runs:
        raise CommandError("no_such_run", f"no run {run_id or ''} on thread {thread_id}".strip())
    run = runs[0]
    status = AGENT_STATUS.get(run["status"], "failed" if run["status"] in TERMINAL else "running")
    if thread is not None and thread["status"] == "interrupted" and status == "completed":
        status = "interrupted"
    graph = (run["kwargs"].get("config") or {}).get("configurable", {}).get("graph_id", "")
    tree: AgentTreeNode = {
        "namespace": [],
        "status": status,  # type: ignore[typeddict-item]
        "graph_name": str(graph),
        "children": [],
    }
    return {"tree": tree}


# -------------------------------------------------------------- subscription
class Subscriptions:
    """A connection's subscriptions (WebSocket); over HTTP each command stands alone."""

    def __init__(self) -> None:
        self.active: dict[str, Row] = {}

    def subscribe(self, params: Row) -> Row:
        try:
            sub = parse_subscription(params)
        except KeelError as exc:
            raise CommandError("invalid_argument", str(exc)) from None
        sid = str(uuid.uuid4())
        self.active[sid] = sub.view()
        return {"subscription_id": sid}

    def unsubscribe(self, params: Row) -> Row:
        sid = params.get("subscription_id")
        if not isinstance(sid, str) or self.active.pop(sid, None) is None:
            raise CommandError("no_such_subscription", f"no subscription {sid!r}")
        return {}

    def reconnect(self, params: Row) -> list[str]:
        """The subscriptions a `subscription.reconnect` restores (those it names, else all)."""
        if not isinstance(params.get("run_id"), str):
            raise CommandError("invalid_argument", "subscription.reconnect: run_id is required")
        wanted = params.get("subscriptions")
        if wanted is None:
            return list(self.active)
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
            raise CommandError("invalid_argument", "subscriptions: expected a list of ids")
        missing = [s for s in wanted if s not in self.active]
        if missing:
            raise CommandError("no_such_subscription", f"no subscription(s) {missing!r}")
        return list(dict.fromkeys(wanted))


def reconnect_since(params: Row) -> int | None:
    """Where a `subscription.reconnect` replays from: `last_event_id` (an event's id, the
    string of its seq) or `since` (a seq); None: from the start."""
    last, since = params.get("last_event_id"), params.get("since")
    if last is not None:
        if not isinstance(last, str) or not last.isdigit():
            raise CommandError("invalid_argument", "last_event_id: expected an event_id")
        return int(last)
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise CommandError("invalid_argument", "since: expected a non-negative integer")
        return since
    return None
