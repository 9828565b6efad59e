"""One run's graph execution: LangGraph stream chunks in, Agent-Server stream events out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langgraph.types import Command, Send, StateSnapshot

from keel.graphs import Graph
from keel.serde import jsonable
from keel.storage.tx import Row

Publish = Callable[[str, Any], None]

SAFE_ERRORS = {
    "ValueError",
    "TypeError",
    "KeyError",
    "RuntimeError",
    "RecursionError",
    "GraphRecursionError",
    "TimeoutError",
    "InvalidUpdateError",
    "EmptyInputError",
    "HTTPException",
    "NotImplementedError",
    "AssertionError",
    "GraphInterrupt",
}
def error_payload(exc: BaseException) -> dict[str, str]:
    name = type(exc).__name__
    message = str(exc) if name in SAFE_ERRORS else "An internal error occurred"
    return {"error": name, "message": message}


def build_command(command: Row) -> Command[Any]:
    goto = command.get("goto")
    if goto is not None:
        items = goto if isinstance(goto, list) else [goto]
        goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in items]
    update = command.get("update")
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    return Command(resume=command.get("resume"), update=update, goto=goto or ())


class StreamTranslator:
    """Turns `astream(..., subgraphs=True)` chunks into named SSE events."""

    def __init__(self, requested: list[str], subgraphs: bool, publish: Publish) -> None:
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self.publish = publish
        self.last_values: Any = None
        self.interrupt_values: Any = None
        self._msg_seen: dict[str, Any] = {}
        self.saw_interrupt = False

    def internal_modes(self) -> list[str]:
        # values: the final state without re-reading it; updates: any interrupt shows up there.
        modes = {"values", "updates"}
        for mode in self.requested - {"events"}:
            modes.add("messages" if mode.startswith("messages") else mode)
        return sorted(modes)

    def handle(self, ns: tuple[str, ...], mode: str, chunk: Any) -> None:
        if not ns and mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
            self.saw_interrupt = True
        if ns and not self.subgraphs:
            return
        suffix = "|" + "|".join(ns) if ns else ""
        if mode == "values":
            self._values(ns, suffix, chunk)
        elif mode == "messages":
            self._messages(suffix, chunk)
        elif mode in self.requested:
            if mode == "debug":
                chunk = _debug_checkpoints(chunk)
            self.publish(mode + suffix, chunk)

    def _values(self, ns: tuple[str, ...], suffix: str, chunk: Any) -> None:
        if not ns:
            if isinstance(chunk, dict) and "__interrupt__" in chunk and len(chunk) == 1:
                base = self.last_values if isinstance(self.last_values, dict) else {}
                chunk = {**base, "__interrupt__": chunk["__interrupt__"]}
                self.interrupt_values = chunk
                self.saw_interrupt = True
            else:
                self.last_values = chunk
        if "values" in self.requested:
            self.publish("values" + suffix, chunk)

    def _messages(self, suffix: str, chunk: Any) -> None:
        message, metadata = chunk
        if "messages-tuple" in self.requested:
            self.publish("messages" + suffix, [message, metadata])
            return
        if "messages" not in self.requested:
            return
        msg_id = getattr(message, "id", None) or ""
        if msg_id not in self._msg_seen:
            self.publish("messages/metadata", {msg_id: {"metadata": metadata}})
            self._msg_seen[msg_id] = None
        if isinstance(message, BaseMessageChunk):
            prev = self._msg_seen[msg_id]
            acc = message if prev is None else prev + message
            self._msg_seen[msg_id] = acc
            self.publish("messages/partial", [acc])
        elif isinstance(message, BaseMessage):
            self.publish("messages/complete", [message])

    def final_state(self) -> StateSnapshot | None:
        """The run's final state when it ended without an interrupt, from the values stream."""
        if self.saw_interrupt or self.last_values is None:
            return None
        return StateSnapshot(self.last_values, (), {}, None, None, None, (), ())

    def finish(self, state: StateSnapshot, interrupted: bool) -> Any:
        """Emit the closing values event for an interrupt and return the wait/join body."""
        values = jsonable(state.values)
        if not interrupted:
            return jsonable(self.last_values) if self.last_values is not None else values
        if self.interrupt_values is not None:
            return jsonable(self.interrupt_values)
        interrupts = [i for task in state.tasks for i in task.interrupts]
        body = values
        if isinstance(values, dict):
            body = {**values, "__interrupt__": jsonable(interrupts)}
        if "values" in self.requested:
            self.publish("values", body)
        return body


def _checkpoint_ref(config: Any) -> Row | None:
    conf = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(conf, dict) or not conf.get("checkpoint_id"):
        return None
    ref = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf["checkpoint_id"],
    }
    if conf.get("checkpoint_map"):
        ref["checkpoint_map"] = conf["checkpoint_map"]
    return ref


def _debug_checkpoints(chunk: Any) -> Any:
    """Debug checkpoint payloads also carry `checkpoint` / `parent_checkpoint` (as the ref does)."""
    if not isinstance(chunk, dict) or chunk.get("type") != "checkpoint":
        return chunk
    payload = chunk.get("payload")
    if not isinstance(payload, dict):
        return chunk
    payload = {
        **payload,
        "checkpoint": _checkpoint_ref(payload.get("config")),
        "parent_checkpoint": _checkpoint_ref(payload.get("parent_config")),
    }
    return {**chunk, "payload": payload}


def thread_interrupts(state: StateSnapshot) -> dict[str, Any]:
    return {t.id: jsonable(list(t.interrupts)) for t in state.tasks if t.interrupts}


async def stream_run(
    graph: Graph,
    graph_input: Any,
    config: Row,
    kwargs: Row,
    translator: StreamTranslator,
) -> None:
    """Drive the graph, feeding every chunk to the translator (and raw events if asked)."""
    options: dict[str, Any] = {
        "stream_mode": translator.internal_modes(),
        "subgraphs": True,
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
        "durability": kwargs.get("durability") or "async",
    }
    context = kwargs.get("context") or None
    if context is not None:
        options["context"] = context
    if "events" not in translator.requested:
        async for ns, mode, chunk in graph.astream(graph_input, config, **options):  # type: ignore[call-overload]
            translator.handle(ns, mode, chunk)
        return
    root: str | None = None
    async for event in graph.astream_events(graph_input, config, version="v2", **options):  # type: ignore[call-overload]
        if root is None:
            root = event["run_id"]
        translator.publish("events", event)
        if event["event"] == "on_chain_stream" and event["run_id"] == root:
            ns, mode, chunk = event["data"]["chunk"]
            translator.handle(ns, mode, chunk)
