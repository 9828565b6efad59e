"""keel.tracing.export writes the same OTLP `ExportTraceServiceRequest` as the SDK's encoder:
both encodings of the same finished spans, decoded by the official protobuf classes, are equal
(every field: ids, parents, kinds, times, attributes of every type, events, links, statuses,
trace state, flags, dropped counts, resources and scopes). Then one export over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export import SpanExporter as BaseExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from keel.tracing.export import SpanExporter, encode
from keel.tracing.records import Current, Finished, SpanRecords
from tests.support.otlp import OtlpReceiver


class Keep(BaseExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def provider(
    keep: Keep, resource: dict[str, str], limits: SpanLimits | None = None
) -> TracerProvider:
    made = TracerProvider(resource=Resource.create(resource), span_limits=limits)
    made.add_span_processor(SimpleSpanProcessor(keep))
    return made


def decoded(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def sdk(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    return decoded(encode_spans(spans).SerializePartialToString())


def remote_parent() -> Context:
    state = TraceState([("vendor", "a1"), ("other", "b2")])
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    return set_span_in_context(NonRecordingSpan(parent))


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    keep = Keep()
    first = provider(keep, {"service.name": "keel", "service.version": "1"})
    tracer = first.get_tracer("keel", "0.9", schema_url="https://opentelemetry.io/schemas/1.2")
    values: dict[str, AttributeValue] = {
        "s": "text é",
        "empty": "",
        "i": 42,
        "neg": -7,
        "big": 2**62,
        "f": 1.25,
        "t": True,
        "no": False,
        "strs": ["a", "b"],
        "ints": [1, -2, 3],
        "floats": [0.5],
        "bools": [True, False],
    }
    root = tracer.start_span("POST /runs/wait", remote_parent(), SpanKind.SERVER, values)
    inside = set_span_in_context(root)
    for kind in SpanKind:
        tracer.start_span(f"kind {kind.name}", inside, kind, {"n": kind.value}).end()
    failed = tracer.start_span("node boom", inside, links=[Link(root.get_span_context(), {"l": 1})])
    failed.record_exception(ValueError("boom"))
    failed.set_status(Status(StatusCode.ERROR, "ValueError: boom"))
    failed.add_event("note", {"k": "v"})
    failed.end()
    ok = tracer.start_span("", inside)  # no name, no attributes
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    root.end()
    # A second resource and a scope without version; limits that drop attributes and events.
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1)
    second = provider(keep, {"service.name": "other"}, limits)
    crowded = second.get_tracer("plain").start_span("crowded", None, attributes=values)
    crowded.add_event("one")
    crowded.add_event("two", {"a": 1, "b": 2, "c": 3})
    crowded.end()
    yield keep.spans


def test_the_encoding_equals_the_sdks(spans: list[ReadableSpan]) -> None:
    ours, theirs = decoded(encode(spans)), sdk(spans)
    assert len(theirs.resource_spans) == 2
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(spans)
    assert ours == theirs


def test_each_span_alone_encodes_as_the_sdk(spans: list[ReadableSpan]) -> None:
    for one in spans:
        assert decoded(encode([one])) == sdk([one]), one.name


def test_a_value_otlp_cannot_carry_leaves_its_attribute_out(spans: list[ReadableSpan]) -> None:
    span = next(s for s in spans if s.name == "POST /runs/wait")
    span._attributes = {**(span.attributes or {}), "huge": 2**70}  # past int64: the SDK fails too
    got = decoded(encode([span])).resource_spans[0].scope_spans[0].spans[0]
    keys = {kv.key for kv in got.attributes}
    assert "huge" not in keys and "s" in keys


def test_an_export_over_http_reaches_a_receiver(spans: list[ReadableSpan]) -> None:
    with OtlpReceiver() as receiver:
        exporter = SpanExporter(endpoint=receiver.url + "/v1/traces")
        try:
            assert exporter.export(spans) == SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]
        got = receiver.trace(None)
    assert sorted(s.name for s in got) == sorted(s.name for s in spans)
    failed = next(s for s in got if s.name == "node boom")
    assert failed.status == 2 and failed.parent_id  # error, child of the request span


def test_keels_own_spans_encode_as_the_sdk_encodes_them() -> None:
    """Keel's spans (keel.tracing.records) are encoded from their records, not through the
    properties the SDK's encoder reads: both give the same message."""
    keep = Keep()
    made = provider(keep, {"service.name": "keel"})
    processor = SimpleSpanProcessor(keep)
    records = SpanRecords(made, processor)
    request = records.start("POST /runs", SpanKind.SERVER, remote_parent(), {"url.path": "/x"})
    assert isinstance(request, Current)
    request.set_attributes({"http.response.status_code": 200, "big": 2**40, "f": 0.5})
    request.set_attribute("strs", ["a", "b"])
    request.add_event("note", {"k": "v", "n": 1})
    request.add_link(SpanContext(0x1, 0x2, is_remote=True, trace_flags=TraceFlags(1)), {"l": True})
    node = records.begin(request.record, "node a", SpanKind.INTERNAL, {"langgraph.step": 1})
    inner = records.begin(node, "chat m", SpanKind.CLIENT, {"flag": True, "one": 1})
    records.end(inner, ValueError("boom"))
    # The same keys, equal values of other types (True == 1): not taken for the cached ones.
    records.end(records.begin(node, "again", SpanKind.INTERNAL, {"flag": 1, "one": True}))
    records.end(node)
    request.set_status(Status(StatusCode.OK))
    request.end()
    root = records.start("cron fire", SpanKind.PRODUCER, Context(), {"keel.cron_id": "c"})
    root.end()
    spans = keep.spans
    assert [type(s) for s in spans] == [Finished] * 5
    assert decoded(encode(spans)) == sdk(spans)
    for one in spans:
        assert decoded(encode([one])) == sdk([one]), one.name
