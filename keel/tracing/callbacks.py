"""`SpanHandler`: a LangChain callback handler the worker adds to a traced run's config. It makes
one span per graph node execution (a LangGraph task: superstep `langgraph.step`), per chat-model
call and per tool call, the latter two with the GenAI semantic conventions (`gen_ai.*`). Each
span's parent is the span of the nearest traced callback run above it, else the run span (the
handler's `root`). The spans are records (keel.tracing.records), never current. Callback runs
are keyed by their ids as integers: a UUID's own hash is Python code, and a run's callbacks
look them up a few dozen times."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.errors import GraphBubbleUp
from opentelemetry.trace import SpanKind

from keel.tracing.records import Record, SpanRecords

NODE = "langgraph_node"
NAMESPACE = "langgraph_checkpoint_ns"
STEP = "langgraph_step"


def _model_name(metadata: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    for name in (metadata.get("ls_model_name"), params.get("model"), params.get("model_name")):
        if name:
            return str(name)
    return str(params.get("_type") or "unknown")


def _usage(response: LLMResult) -> Mapping[str, Any] | None:
    """The token usage the model reported: on the message (usage_metadata), else the
    provider's `llm_output`."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                usage = getattr(generation.message, "usage_metadata", None)
                if usage:
                    return dict(usage)
    token_usage = (response.llm_output or {}).get("token_usage") or {}
    if token_usage.get("prompt_tokens") is None:
        return None
    return {
        "input_tokens": token_usage.get("prompt_tokens"),
        "output_tokens": token_usage.get("completion_tokens"),
    }


class SpanHandler(BaseCallbackHandler):
    """One run's spans below its run span (one handler per run attempt)."""

    run_inline = True  # called in the caller's thread: no executor hop per callback
    raise_error = False

    def __init__(self, records: SpanRecords, root: Record) -> None:
        self.records = records
        self.root = root  # the run span's
        # Keyed by the callback runs' ids as integers (a UUID's own hash is Python code).
        self._parents: dict[int, int | None] = {}
        self._spans: dict[int, Record] = {}
        self._tasks: dict[int, str] = {}  # node spans' callback runs -> checkpoint namespace
        self._open: set[str] = set()  # checkpoint namespaces of the nodes with a span

    # ---------------------------------------------------------------- helpers
    def _parent(self, parent: int | None) -> Record:
        """The record of the nearest traced callback run at or above `parent`, else the root."""
        spans, parents = self._spans, self._parents
        while parent is not None:
            span = spans.get(parent)
            if span is not None:
                return span
            parent = parents.get(parent)
        return self.root

    def _link(self, run_id: UUID, parent_run_id: UUID | None) -> tuple[int, int | None]:
        """A callback run's key and its parent's, the parent remembered."""
        key, parent = run_id.int, parent_run_id.int if parent_run_id is not None else None
        self._parents[key] = parent
        return key, parent

    def _start(
        self, key: int, parent: int | None, name: str, kind: SpanKind, attrs: dict[str, Any]
    ) -> None:
        self._spans[key] = self.records.begin(self._parent(parent), name, kind, attrs)

    def _end(self, key: int, error: BaseException | None = None) -> None:
        self._parents.pop(key, None)
        span = self._spans.pop(key, None)
        if span is not None:
            self.records.end(span, error)

    # ----------------------------------------------------------------- chains
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        key, parent = self._link(run_id, parent_run_id)
        if not metadata:
            return
        node = metadata.get(NODE)
        if node is None or kwargs.get("name") != node:
            return
        namespace = str(metadata.get(NAMESPACE) or "")
        if namespace in self._open:  # the node's task run is open: this is a run inside it
            return
        self._open.add(namespace)
        self._tasks[key] = namespace
        attrs = {"langgraph.node": str(node), "langgraph.step": int(metadata.get(STEP, -1))}
        self._start(key, parent, f"node {node}", SpanKind.INTERNAL, attrs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close_task(run_id.int, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # An interrupt (or a command to a parent graph) is how a node pauses, not a failure.
        self._close_task(run_id.int, None if isinstance(error, GraphBubbleUp) else error)

    def _close_task(self, key: int, error: BaseException | None) -> None:
        self._end(key, error)
        namespace = self._tasks.pop(key, None)
        if namespace is not None:
            self._open.discard(namespace)

    # ----------------------------------------------------------------- models
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        md = metadata or {}
        model = _model_name(md, kwargs.get("invocation_params") or {})
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        if md.get("ls_provider"):
            attrs["gen_ai.provider.name"] = str(md["ls_provider"])
        key, parent = self._link(run_id, parent_run_id)
        self._start(key, parent, f"chat {model}", SpanKind.CLIENT, attrs)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id.int)
        usage = _usage(response) if span is not None else None
        if span is not None and usage:
            for key in ("input_tokens", "output_tokens"):
                if usage.get(key) is not None:
                    span.attributes[f"gen_ai.usage.{key}"] = int(usage[key])
        self._end(run_id.int)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id.int, error)

    # ------------------------------------------------------------------ tools
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if kwargs.get("tool_call_id"):
            attrs["gen_ai.tool.call.id"] = str(kwargs["tool_call_id"])
        key, parent = self._link(run_id, parent_run_id)
        self._start(key, parent, f"execute_tool {name}", SpanKind.INTERNAL, attrs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id.int)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id.int, error)
