"""A2A methods over Keel runs: send (blocking, immediate or streamed), get and cancel a task,
and the agent card. The HTTP edge (keel/http/a2a.py) supplies a `Host`: the request user's
view of assistants, threads and runs, so every run is an ordinary run under the user's auth.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from . import a2a
from .a2a import RpcError

# A run's status → the task's state (a run that ended on an interrupt is `success` on an
# interrupted thread: input-required, decided by `outcome`).
_RUN_STATE = {
    "pending": "TASK_STATE_SUBMITTED",
    "running": "TASK_STATE_WORKING",
    "error": "TASK_STATE_FAILED",
    "timeout": "TASK_STATE_FAILED",
    "interrupted": "TASK_STATE_CANCELED",
}


class Host(Protocol):
    async def assistant(self, assistant_id: str) -> dict[str, Any]: ...

    async def input_fields(self, assistant: dict[str, Any]) -> dict[str, Any]: ...

    async def thread(self, thread_id: str) -> dict[str, Any] | None: ...

    async def run(self, run_id: str) -> dict[str, Any] | None: ...

    async def runs_of(self, thread_id: str) -> list[dict[str, Any]]: ...

    async def start(self, assistant_id: str, thread_id: str, payload: dict[str, Any],
                    metadata: dict[str, Any], streamed: bool) -> dict[str, Any]: ...

    async def wait(self, run: dict[str, Any]) -> Any: ...

    def events(self, run: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]: ...

    async def cancel(self, run: dict[str, Any]) -> bool: ...


# ------------------------------------------------------------------ outcomes
def outcome(body: Any, task_id: str, context_id: str, legacy: bool
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A finished run's body → the task's status and artifacts."""
    body = body if isinstance(body, dict) else {"value": body}
    if "__error__" in body:
        err = body["__error__"]
        text = f"{err.get('error')}: {err.get('message')}" if isinstance(err, dict) else str(err)
        msg = a2a.agent_message([a2a.text_part(text, legacy)], task_id, context_id, legacy)
        return a2a.status("TASK_STATE_FAILED", msg), []
    if "__interrupt__" in body:
        interrupts = [i if isinstance(i, dict) else {"value": i} for i in body["__interrupt__"]]
        parts = [_value_part(i.get("value"), legacy) for i in interrupts]
        msg = a2a.agent_message(parts, task_id, context_id, legacy)
        # As the reference: an `Interrupt` artifact, a data part {id, value} per interrupt.
        pending = [a2a.data_part({"id": i.get("id"), "value": i.get("value")}, legacy)
                   for i in interrupts]
        return a2a.status("TASK_STATE_INPUT_REQUIRED", msg), [a2a.artifact(pending, "Interrupt")]
    return a2a.status("TASK_STATE_COMPLETED"), [a2a.artifact(result_parts(body, legacy), "result")]


def _value_part(value: Any, legacy: bool) -> dict[str, Any]:
    return a2a.text_part(value, legacy) if isinstance(value, str) else a2a.data_part(value, legacy)


def result_parts(values: dict[str, Any], legacy: bool) -> list[dict[str, Any]]:
    """A completed run's answer: the last message's text when the state has messages (as a
    chat agent answers), else the whole final state as a data part."""
    messages = values.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        text = _text(messages[-1].get("content"))
        if text:
            return [a2a.text_part(text, legacy)]
    return [a2a.data_part(values, legacy)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


# ------------------------------------------------------------------ tasks
def task_ref(task_id: Any) -> str:
    """The run id a task id names; the reference's `{contextId}:{runId}` form is accepted."""
    if not isinstance(task_id, str) or not task_id:
        raise RpcError(a2a.INVALID_PARAMS, "Missing or invalid task id")
    run_id = task_id.split(":", 1)[1] if ":" in task_id else task_id
    return _uuid(run_id, "task id")


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise RpcError(a2a.INVALID_PARAMS, f"Invalid {what}: expected a UUID") from None


async def latest_run(host: Host, task_id: str) -> dict[str, Any]:
    """The task's newest run: the one that started it, or the last resume run on its thread."""
    first = await host.run(task_id)
    if first is None:
        raise RpcError(a2a.TASK_NOT_FOUND, f"Task not found: {task_id}")
    for run in await host.runs_of(first["thread_id"]):
        if run["run_id"] == task_id or (run.get("metadata") or {}).get(
            a2a.TASK_METADATA_KEY
        ) == task_id:
            return run
    return first


async def task_view(host: Host, task_id: str, legacy: bool) -> dict[str, Any]:
    run = await latest_run(host, task_id)
    context_id = run["thread_id"]
    state = _RUN_STATE.get(run["status"])
    if state is not None:
        return a2a.task(task_id, context_id, a2a.status(state), legacy)
    st, arts = outcome(await host.wait(run), task_id, context_id, legacy)
    return a2a.task(task_id, context_id, st, legacy, arts)


async def get_task(host: Host, params: dict[str, Any], legacy: bool) -> dict[str, Any]:
    return await task_view(host, task_ref(params.get("id")), legacy)


async def cancel_task(host: Host, params: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """Cancel the task's run (Keel's `interrupt` cancel) while it is pending or running."""
    task_id = task_ref(params.get("id"))
    run = await latest_run(host, task_id)
    if run["status"] not in ("pending", "running") or not await host.cancel(run):
        raise RpcError(a2a.TASK_NOT_CANCELABLE, "Task is not cancelable in its current state")
    msg = a2a.agent_message([a2a.text_part("Task was canceled", legacy)], task_id,
                            run["thread_id"], legacy)
    return a2a.task(task_id, run["thread_id"], a2a.status("TASK_STATE_CANCELED", msg), legacy)


# ------------------------------------------------------------------ send
class Started:
    """A send's run, with the task it belongs to."""

    def __init__(self, run: dict[str, Any], task_id: str, msg: a2a.Inbound) -> None:
        self.run, self.task_id, self.msg = run, task_id, msg
        self.context_id: str = run["thread_id"]


async def start(host: Host, assistant_id: str, params: dict[str, Any], streamed: bool
                ) -> Started:
    """Start the run a message asks for: a resume when it answers an input-required task,
    otherwise a new task on its context (a new thread when it names none)."""
    msg = a2a.inbound(params)
    assistant = await host.assistant(assistant_id)
    task_id, context_id = await _continued(host, msg)
    named = msg.task_id or msg.context_id  # else a new thread: nothing there to look up
    thread = await host.thread(context_id) if named else None
    if thread is not None and thread.get("status") == "interrupted":
        task_id = task_id or await _open_task(host, context_id)
        payload: dict[str, Any] = {"command": {"resume": a2a.resume_value(msg)}}
        meta = {a2a.TASK_METADATA_KEY: task_id}
    else:
        if task_id is not None:
            raise RpcError(a2a.UNSUPPORTED_OPERATION,
                           "This task is not awaiting input: start a new task on its context")
        # Text needs a `messages` input (the graph's schema is read only then).
        takes_messages = bool(msg.texts) and "messages" in await host.input_fields(assistant)
        payload = {"input": a2a.run_input(msg, takes_messages, assistant_id)}
        meta = {}
    run = await host.start(assistant["assistant_id"], context_id, payload, meta, streamed)
    return Started(run, task_id or run["run_id"], msg)


async def _continued(host: Host, msg: a2a.Inbound) -> tuple[str | None, str]:
    """The task a message names (if any) and its context (the task's thread, the one named,
    or a new one)."""
    context_id = _uuid(msg.context_id, "contextId") if msg.context_id else None
    if msg.task_id is None:
        return None, context_id or str(uuid.uuid4())
    task_id = task_ref(msg.task_id)
    run = await latest_run(host, task_id)
    if context_id is not None and context_id != run["thread_id"]:
        raise RpcError(a2a.INVALID_PARAMS, "taskId does not belong to contextId")
    return task_id, run["thread_id"]


async def _open_task(host: Host, context_id: str) -> str:
    runs = await host.runs_of(context_id)
    if not runs:
        raise RpcError(a2a.TASK_NOT_FOUND, "No task on this context")
    meta = runs[0].get("metadata") or {}
    return str(meta.get(a2a.TASK_METADATA_KEY) or runs[0]["run_id"])


def _history(s: Started, legacy: bool) -> list[dict[str, Any]]:
    """A task's history: the incoming message (none for `historyLength: 0`)."""
    if s.msg.history_length == 0:
        return []
    return [a2a.user_message(s.msg, s.task_id, s.context_id, legacy)]


async def send(host: Host, assistant_id: str, params: dict[str, Any], legacy: bool
               ) -> dict[str, Any]:
    """`SendMessage`: the task once its run ends (or at once, `returnImmediately`)."""
    s = await start(host, assistant_id, params, False)
    history = _history(s, legacy)
    if s.msg.return_immediately:
        st = a2a.status(_RUN_STATE.get(s.run["status"], "TASK_STATE_SUBMITTED"))
        return a2a.task(s.task_id, s.context_id, st, legacy, history=history)
    st, arts = outcome(await host.wait(s.run), s.task_id, s.context_id, legacy)
    return a2a.task(s.task_id, s.context_id, st, legacy, arts, history)


async def stream(host: Host, s: Started, legacy: bool) -> AsyncIterator[dict[str, Any]]:
    """`SendStreamingMessage`'s results: the task (submitted), a working status update per
    node update carrying it as a data part, the result artifact, the final status."""
    tid, cid = s.task_id, s.context_id
    history = _history(s, legacy)
    first = a2a.task(tid, cid, a2a.status("TASK_STATE_SUBMITTED"), legacy, history=history)
    yield a2a.stream_event("task", first, legacy)
    async for event, data in host.events(s.run):
        if event.split("|")[0] == "updates" and isinstance(data, dict):
            msg = a2a.agent_message([a2a.data_part(data, legacy)], tid, cid, legacy)
            yield a2a.status_update(tid, cid, a2a.status("TASK_STATE_WORKING", msg), False, legacy)
    st, arts = outcome(await host.wait(s.run), tid, cid, legacy)
    for art in arts:
        yield a2a.artifact_update(tid, cid, art, legacy)
    yield a2a.status_update(tid, cid, st, True, legacy)


# ------------------------------------------------------------------ agent card
def card(assistant: dict[str, Any], fields: dict[str, Any], required: list[str], agent_url: str,
         version: str) -> dict[str, Any]:
    """The assistant's agent card: A2A 1.0 `supportedInterfaces` (JSON-RPC at `agent_url`)
    and the 0.3 fields (`url`, `protocolVersion`, `preferredTransport`) older clients read."""
    name = assistant.get("name") or assistant["graph_id"]
    description = assistant.get("description") or f"{name} assistant"
    modes = ["application/json", "text/plain"]
    skill = {
        "id": f"{assistant['assistant_id']}-main",
        "name": f"{name} Capabilities",
        "description": description,
        "tags": ["assistant", "langgraph"],
        "examples": [],
        "inputModes": modes,
        "outputModes": modes,
        "metadata": {"inputSchema": {"required": required, "properties": sorted(fields),
                                     "supportsA2A": "messages" in fields}},
    }
    return {
        "name": name,
        "description": description,
        "url": agent_url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "supportedInterfaces": [
            {"url": agent_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        ],
        "capabilities": {"streaming": True, "pushNotifications": False,
                         "stateTransitionHistory": False},
        "defaultInputModes": modes,
        "defaultOutputModes": modes,
        "skills": [skill],
        "version": version,
    }
