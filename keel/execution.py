"""One run's graph execution: LangGraph stream chunks in, Agent-Server stream events out."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, cast

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.errors import (
    EmptyInputError,
    GraphBubbleUp,
    InvalidUpdateError,
    TaskNotFound,
)
from langgraph.types import Command, Send, StateSnapshot

from keel import __version__
from keel.graphs import Graph
from keel.serde import jsonable
from keel.storage.tx import Row

Publish = Callable[[str, Any], None]

# Exceptions whose message reaches the client, subclasses included (the reference's rule);
# any other exception is reported by class name with a fixed message.
SAFE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RuntimeError,
    RecursionError,
    TimeoutError,
    InvalidUpdateError,
    GraphBubbleUp,
    EmptyInputError,
    TaskNotFound,
)
# Starlette's HTTPException (and FastAPI's subclass), matched by name: only keel/http imports it.
HTTP_EXCEPTION = ("starlette.exceptions", "HTTPException")
HIDDEN_MESSAGE = "An internal error occurred"
INTERRUPT = "__interrupt__"
HIDDEN_TAG = "langsmith:hidden"


def error_payload(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc) if _safe(exc) else HIDDEN_MESSAGE}


def _safe(exc: BaseException) -> bool:
    if isinstance(exc, SAFE_ERRORS):
        return True
    return any((c.__module__, c.__qualname__) == HTTP_EXCEPTION for c in type(exc).__mro__)


@functools.cache
def server_metadata() -> dict[str, Any]:
    """The `langgraph_*` keys the reference puts in every run's config metadata (they reach
    checkpoint, event and messages-tuple metadata), with Keel's own values."""
    return {
        "langgraph_version": version("langgraph"),
        "langgraph_api_version": __version__,
        "langgraph_plan": "developer",
        "langgraph_host": "self-hosted",
        "langgraph_api_url": os.environ.get("LANGGRAPH_API_URL"),
    }


def build_command(command: Row) -> Command[Any]:
    goto = command.get("goto")
    if goto is not None:
        items = goto if isinstance(goto, list) else [goto]
        goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in items]
    update = command.get("update")
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    return Command(resume=command.get("resume"), update=update, goto=goto or ())


def run_input(kwargs: Row, configurable: Row, resumed: bool) -> Any:
    """What the graph is invoked with: nothing for a recovered run (it continues from its last
    checkpoint, whatever the request said), else the request's command or input."""
    if resumed:
        for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
            configurable.pop(key, None)
        return None
    if kwargs.get("command"):
        return build_command(kwargs["command"])
    return kwargs.get("input")


def _interrupts_in(data: Any) -> list[Any]:
    """The interrupts a published `values`/`updates` chunk carries (none for a breakpoint)."""
    found = data.get(INTERRUPT) if isinstance(data, dict) else None
    return list(found) if isinstance(found, (list, tuple)) else []


class RunResult:
    """The wait/join body, built from the events the run published: the last root `values`
    event, unless root `values`/`updates` events carried interrupts (then the last of them,
    or all their interrupts merged when there were several). Errors are handled by the worker."""

    def __init__(self) -> None:
        self.latest: Any = None
        self.interrupt_chunks: list[Any] = []

    def absorb(self, name: str, data: Any) -> None:
        if name not in ("values", "updates"):
            return
        if _interrupts_in(data):
            self.interrupt_chunks.append(data)
            self.latest = data
        elif name == "values":
            self.latest = data

    def body(self, fallback: Callable[[], Any]) -> Any:
        """The body as JSON; `fallback` gives it when the run published no state at all."""
        if len(self.interrupt_chunks) > 1:
            merged = [i for chunk in self.interrupt_chunks for i in _interrupts_in(chunk)]
            return jsonable({INTERRUPT: merged})
        if self.latest is not None:
            return jsonable(self.latest)
        return fallback()


class StreamTranslator:
    """Turns LangGraph `astream` chunks into named SSE events and remembers what the worker
    needs afterwards: the last root checkpoint and the wait/join body."""

    def __init__(self, requested: list[str], subgraphs: bool, publish: Publish) -> None:
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self._publish = publish
        self.result = RunResult()
        self.checkpoint: Any = None  # the last root `checkpoints` payload
        self._msg_seen: dict[str, Any] = {}

    def internal_modes(self) -> list[str]:
        # checkpoints: the final full state (values events hold only the output channels).
        modes = {"checkpoints"}
        for mode in self.requested - {"events"}:
            modes.add("messages" if mode.startswith("messages") else mode)
        return sorted(modes)

    def publish(self, name: str, data: Any) -> None:
        self._publish(name, data)
        self.result.absorb(name, data)

    def stream_options(self) -> dict[str, Any]:
        """More `astream` options (the v3 translator asks for stream parts)."""
        return {}

    def configure(self, config: Row) -> Row:
        return config

    async def graph_input(self, graph: Graph, config: Row, graph_input: Any) -> Any:
        """What the graph is invoked with (the v3 translator may make it a resume)."""
        return graph_input

    def feed(self, chunk: Any) -> None:
        """One `astream` chunk."""
        self.handle(*_split(chunk, self.subgraphs))

    def end(self) -> None:
        """The graph's stream ended normally."""

    def handle(self, ns: tuple[str, ...], mode: str, chunk: Any) -> None:
        if mode == "checkpoints" and not ns:
            self.checkpoint = chunk
        if ns and not self.subgraphs:
            return
        suffix = "|" + "|".join(ns) if ns else ""
        if mode == "messages":
            self._messages(suffix, chunk)
        elif mode in self.requested:
            if mode == "debug":
                chunk = _debug_chunk(chunk)
            self.publish(mode + suffix, chunk)

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
            # The accumulated chunk goes out as a whole message (`type: "ai"`), as the ref does.
            self.publish("messages/partial", [message_chunk_to_message(acc)])
        elif isinstance(message, BaseMessage):
            self.publish("messages/complete", [message])

    def final_state(self) -> StateSnapshot | None:
        """The run's final state from its last root checkpoint, when nothing is left to run.
        None when the run stopped early (interrupt, breakpoint) or wrote no checkpoint: the
        worker then reads the state with its tasks and interrupts from the checkpointer."""
        cp = self.checkpoint
        if not isinstance(cp, dict) or cp.get("next"):
            return None
        config = cast(RunnableConfig, cp.get("config") or {})
        parent = cp.get("parent_config")
        return StateSnapshot(cp.get("values"), (), config, cp.get("metadata"), None, parent, (), ())


def fallback_body(state: StateSnapshot | None, temporary: bool) -> Any:
    """The wait/join body of a run that published no state: the thread's, as a finished run's
    join sees it (pending interrupts, else values)."""
    if state is None or temporary:
        return {}
    if state.next:
        interrupts = [i for items in thread_interrupts(state).values() for i in items]
        if interrupts:
            return {INTERRUPT: interrupts}
    return jsonable(state.values) or {}


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


def _debug_task(task: Any) -> Any:
    """A subgraph task's `state` (a config pointing at the subgraph) becomes `checkpoint`."""
    state = task.get("state") if isinstance(task, dict) else None
    if not isinstance(state, dict) or not state.get("configurable"):
        return task
    out = {k: v for k, v in task.items() if k != "state"}
    out["checkpoint"] = state["configurable"]
    return out


def _debug_chunk(chunk: Any) -> Any:
    """Debug checkpoint payloads in the reference's shape: `checkpoint` / `parent_checkpoint`
    added, subgraph tasks pointing at their checkpoint."""
    if not isinstance(chunk, dict) or chunk.get("type") != "checkpoint":
        return chunk
    payload = chunk.get("payload")
    if not isinstance(payload, dict):
        return chunk
    payload = {
        **payload,
        "checkpoint": _checkpoint_ref(payload.get("config")),
        "parent_checkpoint": _checkpoint_ref(payload.get("parent_config")),
        "tasks": [_debug_task(t) for t in payload.get("tasks") or ()],
    }
    return {**chunk, "payload": payload}


def _interrupt_field(interrupt: Any, name: str) -> Any:
    return interrupt.get(name) if isinstance(interrupt, dict) else getattr(interrupt, name, None)


def interrupts_view(interrupts: Any) -> list[Any]:
    """Interrupts as threads and states show them: `id` and `value`, plus `response_schema`
    only when the graph gave one (stream events carry LangGraph's own form)."""
    out = []
    for interrupt in interrupts or ():
        view = {
            "id": _interrupt_field(interrupt, "id"),
            "value": _interrupt_field(interrupt, "value"),
        }
        schema = _interrupt_field(interrupt, "response_schema")
        if schema is not None:
            view["response_schema"] = schema
        out.append(view)
    return list(jsonable(out))


def thread_interrupts(state: StateSnapshot) -> dict[str, Any]:
    """The pending interrupts a thread shows, by task. A task whose last attempt failed has
    none (the reference takes a task's interrupts from its latest result, which has none)."""
    return {
        t.id: interrupts_view(t.interrupts) for t in state.tasks if t.interrupts and not t.error
    }


def _split(chunk: Any, subgraphs: bool) -> tuple[tuple[str, ...], str, Any]:
    if subgraphs:
        ns, mode, data = chunk
        return tuple(ns), mode, data
    mode, data = chunk
    return (), mode, data


async def stream_run(
    graph: Graph,
    graph_input: Any,
    config: Row,
    kwargs: Row,
    context: Any,
    translator: StreamTranslator,
) -> None:
    """Drive the graph, feeding every chunk to the translator (and raw events if asked)."""
    subgraphs = translator.subgraphs
    options: dict[str, Any] = {
        "stream_mode": translator.internal_modes(),
        "subgraphs": subgraphs,
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
        "durability": kwargs.get("durability") or "async",
    }
    if context is not None:
        options["context"] = context
    options.update(translator.stream_options())
    config = translator.configure(config)
    graph_input = await translator.graph_input(graph, config, graph_input)
    if "events" not in translator.requested:
        # Values events hold the graph's output channels only (its output schema).
        options["output_keys"] = graph.output_channels
        async for chunk in graph.astream(graph_input, config, **options):  # type: ignore[call-overload]
            translator.feed(chunk)
        translator.end()
        return
    # As the reference: the root graph's own stream chunks become the requested modes' events
    # (their `on_chain_stream` events are not sent), and `values` are not narrowed here.
    root: str | None = None
    async for event in graph.astream_events(graph_input, config, version="v2", **options):  # type: ignore[call-overload]
        if HIDDEN_TAG in (event.get("tags") or ()):
            continue
        if root is None:
            root = event["run_id"]
        if event["event"] == "on_chain_stream" and event["run_id"] == root:
            translator.handle(*_split(event["data"]["chunk"], subgraphs))
        else:
            translator.publish("events", event)
