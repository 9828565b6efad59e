"""Keel's spans, made as records: what the SDK's live span does, for what Keel's spans need.

The SDK's live span (a lock, validated attributes, processors told at start and at end, a copy
into a `ReadableSpan` at end) costs 164 k instructions from start to export queue. Keel's spans
need none of it: their processor is the batch processor Keel built, and nothing else sees them.
So every span of Keel's is a `Record` (ids made at its start with the provider's id generator)
and at its end one `Finished` span, the SDK's `ReadableSpan` carrying its record, goes to that
processor: about 30 k instructions. Keel's encoder (keel.tracing.export) reads the record
rather than the span's properties.

- `SpanRecords.begin`: a node, model or tool span, never current. Its parent is a recorded
  span of the same run, so it follows that span's sampling decision (what the SDK's
  parent-based samplers, the default, decide) and the sampler is not asked.
- `SpanRecords.start`: a request's, a run's or a firing's span. The provider's sampler is asked
  as the SDK's tracer asks it; the span is a `Current`, an `opentelemetry.trace.Span` that can
  be made current (`current`), so that what reads the current span (the trace context a run
  stores, log lines, a graph's own instrumentation) sees it, and can set its attributes,
  events, links, status and name.

What the exporter receives is what the SDK's spans would give: an error is an error status and
an `exception` event with the attributes `Span.record_exception` writes. Not applied: the SDK's
attribute count and length limits (`OTEL_*ATTRIBUTE*_LIMIT`); Keel's spans carry a handful.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util import types

UNSET = Status()
SAMPLED, NOT_SAMPLED = TraceFlags(TraceFlags.SAMPLED), TraceFlags(TraceFlags.DEFAULT)


@dataclasses.dataclass(slots=True)
class Record:
    """A span begun: what its end needs, its context for its children, and its ids as integers
    for Keel's encoder (keel.tracing.export), which reads records rather than properties."""

    name: str
    kind: SpanKind
    context: SpanContext
    parent: SpanContext | None
    start: int
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    parent_id: int  # 0: none
    events: list[Event] | None = None  # made at the first
    links: list[Link] | None = None
    status: Status = UNSET
    end: int = 0


def span_context(trace_id: int, span_id: int, flags: TraceFlags, state: TraceState) -> SpanContext:
    """`SpanContext(trace_id, span_id, False, flags, state)` for ids the provider's generator
    made (so valid): the tuple the constructor builds, without its checks, which cost most of a
    node span's start. `FAST` says whether this SDK's SpanContext is still that tuple."""
    if FAST:
        return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, True))
    return SpanContext(trace_id, span_id, False, flags, state)


_made = tuple.__new__(SpanContext, (3, 5, False, SAMPLED, TraceState(), True))
FAST = _made == SpanContext(3, 5, False, SAMPLED, TraceState()) and _made.span_id == 5


class Finished(ReadableSpan):
    """A record's finished span: the SDK's `ReadableSpan` for its processors (and any
    exporter), with the record, which Keel's encoder reads directly."""

    def __init__(self, record: Record, resource: Resource, scope: InstrumentationScope) -> None:
        super().__init__(
            record.name,
            context=record.context,
            parent=record.parent,
            resource=resource,
            attributes=record.attributes,
            events=record.events or (),
            links=record.links or (),
            kind=record.kind,
            status=record.status,
            start_time=record.start,
            end_time=record.end,
            instrumentation_scope=scope,
        )
        self.record = record


class SpanRecords:
    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        self.ids = provider.id_generator
        self.sampler = provider.sampler
        self.resource = provider.resource
        self.processor = processor
        self.scope = InstrumentationScope("keel")  # the scope of the tracer's own spans

    def begin(
        self, parent: Record, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> Record:
        """A child of the recorded span `parent`, with its sampling decision."""
        span_id = self.ids.generate_span_id()
        above = parent.context
        context = span_context(parent.trace_id, span_id, above.trace_flags, above.trace_state)
        return Record(
            name, kind, context, above, time_ns(), attributes, parent.trace_id, span_id,
            parent.span_id,
        )  # fmt: skip

    def start(self, name: str, kind: SpanKind, parent: Context, attributes: dict[str, Any]) -> Span:
        """A span below the span current in `parent` (none: a new trace), as the provider's
        sampler decides: a `Current` when recorded, else a non-recording span."""
        above = get_current_span(parent).get_span_context()
        remote = above if above.is_valid else None
        trace_id = remote.trace_id if remote else self.ids.generate_trace_id()
        result = self.sampler.should_sample(parent, trace_id, name, kind, attributes)
        flags = SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else NOT_SAMPLED
        span_id = self.ids.generate_span_id()
        context = SpanContext(trace_id, span_id, False, flags, result.trace_state)
        if result.decision is Decision.DROP:
            return NonRecordingSpan(context)
        parent_id = remote.span_id if remote else 0
        attrs = dict(result.attributes)
        record = Record(name, kind, context, remote, time_ns(), attrs, trace_id, span_id, parent_id)
        return Current(self, record)

    def end(
        self, record: Record, error: BaseException | None = None, at: int | None = None
    ) -> None:
        """The span, finished now (or `at`), to the export queue; `error` makes it an error."""
        record.end = at or time_ns()
        if error is not None:
            record.events = [*(record.events or ()), exception_event(error, record.end)]
            record.status = Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        self.processor.on_end(Finished(record, self.resource, self.scope))


class Current(Span):
    """A recorded span that can be current: the live span's methods, kept in its record."""

    def __init__(self, records: SpanRecords, record: Record) -> None:
        self.records = records
        self.record = record
        self.ended = False

    def get_span_context(self) -> SpanContext:
        return self.record.context

    def is_recording(self) -> bool:
        return not self.ended

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if not self.ended:
            self.record.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if not self.ended:
            self.record.attributes.update(attributes)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if not self.ended:
            self._event(Event(name, attributes, timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not self.ended and context.is_valid:
            if self.record.links is None:
                self.record.links = []
            self.record.links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if not self.ended:
            self.record.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: UNSET is ignored, and so is anything after OK."""
        if self.ended or self.record.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.record.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if not self.ended:
            event = exception_event(exception, timestamp or time_ns(), escaped, attributes)
            self._event(event)

    def _event(self, event: Event) -> None:
        if self.record.events is None:
            self.record.events = []
        self.record.events.append(event)

    def end(self, end_time: int | None = None) -> None:
        if not self.ended:
            self.ended = True
            self.records.end(self.record, at=end_time)


@contextmanager
def current(span: Span) -> Iterator[Span]:
    """`span` current for the block and ended after it; an exception leaving the block is
    recorded on it and makes it an error (the API's `use_span`, end on exit)."""
    token = otel_context.attach(set_span_in_context(span))
    try:
        yield span
    except Exception as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def exception_event(
    error: BaseException,
    timestamp: int,
    escaped: bool = False,
    extra: types.Attributes = None,
) -> Event:
    """The event `Span.record_exception` adds (OpenTelemetry's exception conventions)."""
    module, qualname = type(error).__module__, type(error).__qualname__
    kind = f"{module}.{qualname}" if module and module != "builtins" else qualname
    attributes: dict[str, Any] = {
        "exception.type": kind,
        "exception.message": str(error),
        "exception.stacktrace": "".join(traceback.format_exception(error)),
        "exception.escaped": str(escaped),
    }
    attributes.update(extra or {})
    return Event("exception", attributes, timestamp)
