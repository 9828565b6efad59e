"""`SpanRecords`: Keel's node, model and tool spans made as finished records.

The SDK's live span (a lock, validated attributes, a sampler call, processors told at start and
at end, a copy into a `ReadableSpan` at end) costs 164 k instructions from start to export queue;
these spans need none of it: their attributes are Keel's own, they are never current, and their
parent is the run span, recording (the SDK's parent-based samplers decide the same for them).
So their ids are made at start (the provider's id generator, the parent's trace, flags and
state), and at end one `ReadableSpan` goes to the batch processor Keel built: 33 k instructions.
What the exporter receives is what the SDK's spans would give: an error is an error status and
an `exception` event with the attributes `Span.record_exception` writes.
"""

from __future__ import annotations

import dataclasses
import traceback
from time import time_ns
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

UNSET = Status()


@dataclasses.dataclass(slots=True)
class Record:
    """A span begun: what its end needs, and its context for its children."""

    name: str
    kind: SpanKind
    context: SpanContext
    parent: SpanContext
    start: int
    attributes: dict[str, Any]


class SpanRecords:
    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        self.ids = provider.id_generator
        self.resource = provider.resource
        self.processor = processor
        self.scope = InstrumentationScope("keel")  # the scope of the tracer's own spans

    def begin(
        self, parent: SpanContext, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> Record:
        span_id = self.ids.generate_span_id()
        context = SpanContext(
            parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
        )
        return Record(name, kind, context, parent, time_ns(), attributes)

    def end(self, record: Record, error: BaseException | None = None) -> None:
        """The span, finished now, to the export queue."""
        now = time_ns()
        events: tuple[Event, ...] = ()
        status = UNSET
        if error is not None:
            events = (exception_event(error, now),)
            status = Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        span = ReadableSpan(
            record.name,
            context=record.context,
            parent=record.parent,
            resource=self.resource,
            attributes=record.attributes,
            events=events,
            kind=record.kind,
            status=status,
            start_time=record.start,
            end_time=now,
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(span)


def exception_event(error: BaseException, timestamp: int) -> Event:
    """The event `Span.record_exception` adds (OpenTelemetry's exception conventions)."""
    module, qualname = type(error).__module__, type(error).__qualname__
    kind = f"{module}.{qualname}" if module and module != "builtins" else qualname
    attributes = {
        "exception.type": kind,
        "exception.message": str(error),
        "exception.stacktrace": "".join(traceback.format_exception(error)),
        "exception.escaped": "False",
    }
    return Event("exception", attributes, timestamp)
