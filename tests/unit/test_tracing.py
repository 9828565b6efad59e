"""keel.tracing's switch and propagation, keel.logs' JSON lines: no server needed."""

from __future__ import annotations

import io
import json
import logging

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from typing_extensions import TypedDict

from keel import logs
from keel.tracing import TRACE_CONTEXT, Tracing
from keel.tracing.setup import configured, trace_id_of

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"
RUN = {
    "run_id": "r1",
    "thread_id": "t1",
    "assistant_id": "a1",
    "attempt": 1,
    "kwargs": {
        "config": {"configurable": {"graph_id": "g"}},
        TRACE_CONTEXT: {"traceparent": PARENT},
    },
}


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_SERVICE_NAME": "keel"}, False),
    ],
)
def test_traces_are_on_only_with_an_otlp_endpoint(env: dict[str, str], on: bool) -> None:
    assert configured(env) is on


def test_off_makes_no_provider_and_no_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracing = Tracing.from_env()
    assert not tracing.enabled and tracing.provider is None
    assert tracing.callbacks() == []


def test_off_still_passes_the_clients_trace_context_on() -> None:
    carrier = Tracing.off().carrier({"traceparent": PARENT, "accept": "*/*"})
    assert carrier == {"traceparent": PARENT}
    assert Tracing.off().carrier({}) == {}


def test_the_trace_id_of_a_stored_traceparent() -> None:
    assert trace_id_of({"traceparent": PARENT}) == TRACE
    assert trace_id_of({"traceparent": "garbage"}) is None
    assert trace_id_of(None) is None


def _json_line(message: str) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.unit.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, "x")
    finally:
        logger.removeHandler(handler)
    line: dict[str, object] = json.loads(stream.getvalue())
    return line


def test_a_json_line_outside_a_run_has_no_run_ids() -> None:
    line = _json_line("hello %s")
    assert line["message"] == "hello x" and line["level"] == "warning"
    assert line["logger"] == "tests.unit.json_logs"
    assert str(line["ts"]).endswith("Z")
    assert "run_id" not in line


def test_a_json_line_inside_a_run_has_its_ids_and_trace_id_with_tracing_off() -> None:
    with Tracing.off().run_span(RUN, "w1"):
        line = _json_line("in %s")
    assert (line["run_id"], line["thread_id"], line["trace_id"]) == ("r1", "t1", TRACE)
    assert "run_id" not in _json_line("after %s")


def test_a_run_whose_trace_is_not_sampled_gets_no_callback_handler() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    for sampler, handlers in ((ALWAYS_OFF, 0), (ALWAYS_ON, 1)):
        provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
        processor = SimpleSpanProcessor(InMemorySpanExporter())
        provider.add_span_processor(processor)
        tracing = Tracing(provider, processor)
        with tracing.run_span(RUN, "w1") as span:
            assert span is not None and span.is_recording() is bool(handlers)
            assert len(tracing.callbacks()) == handlers
        tracing.close()


class State(TypedDict, total=False):
    answer: str


def traced() -> tuple[Tracing, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SimpleSpanProcessor(spans)
    provider.add_span_processor(processor)
    return Tracing(provider, processor), spans


def named(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in spans.get_finished_spans() if s.name == name]
    return span


async def test_a_failing_node_is_an_error_span_with_the_sdks_exception_event() -> None:
    failure = ValueError("boom")

    def boom(state: State) -> State:
        raise failure

    graph = StateGraph(State).add_node("boom", boom).add_edge(START, "boom").compile()
    tracing, spans = traced()
    with tracing.run_span(RUN, "w1") as run, pytest.raises(ValueError):
        await graph.ainvoke({}, {"callbacks": tracing.callbacks()})
    node = named(spans, "node boom")
    assert run is not None and node.parent is not None
    assert node.parent.span_id == run.get_span_context().span_id  # a child of the run span
    assert node.context is not None and node.context.trace_id == int(TRACE, 16)
    assert node.status.status_code == StatusCode.ERROR
    assert node.status.description == "ValueError: boom"
    # The event the SDK's own Span.record_exception writes for the same exception.
    assert tracing.provider is not None
    sdk_span = tracing.provider.get_tracer("sdk").start_span("sdk")
    sdk_span.record_exception(failure)
    sdk_span.end()
    [ours], [theirs] = node.events, named(spans, "sdk").events
    mine, sdks = dict(ours.attributes or {}), dict(theirs.attributes or {})
    # The stack trace was taken at the node; the exception has travelled further since.
    assert "raise failure" in str(mine.pop("exception.stacktrace"))
    sdks.pop("exception.stacktrace")
    assert (ours.name, mine) == (theirs.name, sdks)
    tracing.close()


async def test_an_interrupted_node_is_not_an_error() -> None:
    def ask(state: State) -> State:
        return {"answer": str(interrupt("approve?"))}

    builder = StateGraph(State).add_node("ask", ask).add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver())
    tracing, spans = traced()
    with tracing.run_span(RUN, "w1"):
        config: RunnableConfig = {"configurable": {"thread_id": "t"}}
        config["callbacks"] = tracing.callbacks()
        await graph.ainvoke({}, config)
    node = named(spans, "node ask")
    assert node.status.status_code == StatusCode.UNSET and not node.events
    assert node.attributes == {"langgraph.node": "ask", "langgraph.step": 1}
    tracing.close()


def test_a_request_span_follows_the_clients_sampled_flag_and_trace() -> None:
    tracing, spans = traced()
    sampled = tracing.request_span("GET", {}, {"traceparent": PARENT})
    dropped = tracing.request_span("GET", {}, {"traceparent": PARENT[:-2] + "00"})
    fresh = tracing.request_span("GET", {}, {"traceparent": "garbage"})
    assert sampled.is_recording() and not dropped.is_recording() and fresh.is_recording()
    for span in (sampled, dropped, fresh):
        span.end()
    got = {s.context.trace_id: s for s in spans.get_finished_spans() if s.context}
    assert len(got) == 2  # the dropped span is not exported
    child = got[int(TRACE, 16)]
    assert child.parent is not None and child.parent.span_id == 0xB7AD6B7169203331
    assert child.parent.is_remote and child.kind.name == "SERVER"
    assert dropped.get_span_context().trace_id == int(TRACE, 16)  # the trace still continues
    tracing.close()


def test_code_inside_a_run_reads_and_annotates_the_current_span() -> None:
    """A graph's own code sees the run span as the current span, as with the SDK's spans: its
    attributes, events and status reach the export, and an exception leaving the block makes
    the span an error with the exception event."""
    from opentelemetry.trace import get_current_span

    tracing, spans = traced()
    with pytest.raises(KeyError), tracing.run_span(RUN, "w1"):
        span = get_current_span()
        span.set_attribute("mine", 1)
        span.add_event("checkpoint", {"n": 2})
        span.set_status(StatusCode.UNSET)  # ignored, as by the SDK
        span.update_name("renamed")
        raise KeyError("gone")
    [run] = spans.get_finished_spans()
    assert run.name == "renamed" and run.attributes is not None and run.attributes["mine"] == 1
    assert [e.name for e in run.events] == ["checkpoint", "exception"]
    assert run.status.status_code == StatusCode.ERROR
    assert run.status.description == "KeyError: 'gone'"
    assert not span.is_recording()  # ended: later calls change nothing
    span.set_attribute("late", 1)
    assert "late" not in (run.attributes or {})
    tracing.close()


async def test_a_request_that_raises_is_an_error_span_with_the_exception() -> None:
    """The request middleware (keel/http/tracing.py) around an app that fails: the span is
    named after the route, an error carrying the exception's description, with its event."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from keel.http.tracing import TraceRequests

    async def boom(request: Request) -> None:
        raise RuntimeError("boom")

    tracing, spans = traced()
    app = TraceRequests(Starlette(routes=[Route("/boom/{n}", boom)]), tracing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        response = await client.get("/boom/1", headers={"traceparent": PARENT})
    assert response.status_code == 500
    [span] = spans.get_finished_spans()
    assert span.name == "GET /boom/{n}" and span.attributes is not None
    assert span.attributes["http.route"] == "/boom/{n}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "RuntimeError: boom"
    assert [e.name for e in span.events] == ["exception"]
    assert span.context is not None and span.context.trace_id == int(TRACE, 16)
    tracing.close()
