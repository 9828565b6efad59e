"""`SpanHandler`: a LangChain callback handler the worker adds to a traced run's config. It makes
one span per graph node execution (a LangGraph task: superstep `langgraph.step`), per chat-model
call and per tool call, the latter two with the GenAI semantic conventions (`gen_ai.*`). Each
span's parent is the span of the nearest traced callback run above it, else the run span that
was current when the handler was made. The spans are records (keel.tracing.records): made at
their end, never current."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.errors import GraphBubbleUp
from opentelemetry.trace import SpanContext, SpanKind, get_current_span

from keel.tracing.records import Record, SpanRecords

NODE = "langgraph_node"
NAMESPACE = "langgraph_checkpoint_ns"


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

    def __init__(self, records: SpanRecords) -> None:
        self.records = records
        self.root = get_current_span().get_span_context()  # the run span's
        self._parents: dict[UUID, UUID | None] = {}
        self._spans: dict[UUID, Record] = {}
        self._tasks: dict[UUID, str] = {}  # node spans' callback runs -> checkpoint namespace
        self._open: set[str] = set()  # checkpoint namespaces of the nodes with a span

    # ---------------------------------------------------------------- helpers
    def _parent_context(self, parent: UUID | None) -> SpanContext:
        while parent is not None:
            span = self._spans.get(parent)
            if span is not None:
                return span.context
            parent = self._parents.get(parent)
        return self.root

    def _start(
        self, run_id: UUID, parent: UUID | None, name: str, kind: SpanKind, attrs: dict[str, Any]
    ) -> None:
        self._spans[run_id] = self.records.begin(self._parent_context(parent), name, kind, attrs)

    def _end(self, run_id: UUID, error: BaseException | None = None) -> None:
        self._parents.pop(run_id, None)
        span = self._spans.pop(run_id, None)
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
        self._parents[run_id] = parent_run_id
        md = metadata or {}
        node = md.get(NODE)
        namespace = str(md.get(NAMESPACE) or "")
        if node is None or kwargs.get("name") != node or namespace in self._open:
            return
        self._open.add(namespace)
        self._tasks[run_id] = namespace
        attrs = {"langgraph.node": str(node), "langgraph.step": int(md.get("langgraph_step", -1))}
        self._start(run_id, parent_run_id, f"node {node}", SpanKind.INTERNAL, attrs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close_task(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # An interrupt (or a command to a parent graph) is how a node pauses, not a failure.
        self._close_task(run_id, None if isinstance(error, GraphBubbleUp) else error)

    def _close_task(self, run_id: UUID, error: BaseException | None) -> None:
        self._end(run_id, error)
        namespace = self._tasks.pop(run_id, None)
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
        self._parents[run_id] = parent_run_id
        self._start(run_id, parent_run_id, f"chat {model}", SpanKind.CLIENT, attrs)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        usage = _usage(response) if span is not None else None
        if span is not None and usage:
            for key in ("input_tokens", "output_tokens"):
                if usage.get(key) is not None:
                    span.attributes[f"gen_ai.usage.{key}"] = int(usage[key])
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

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
        self._parents[run_id] = parent_run_id
        self._start(run_id, parent_run_id, f"execute_tool {name}", SpanKind.INTERNAL, attrs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)
