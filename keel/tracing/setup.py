"""`Tracing`: one process's tracer provider (never the global one) and the run span.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and
`OTEL_SDK_DISABLED` is not `true`. The SDK reads the rest of its environment itself: the service
name and resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the sampler
(`OTEL_TRACES_SAMPLER`, `_ARG`), the exporter's headers, timeout and compression, and the batch
processor's delays and sizes (`OTEL_BSP_*`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from keel import logs
from keel.storage.tx import Row

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span

    from keel.tracing.records import SpanRecords

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DISABLED = "OTEL_SDK_DISABLED"
DEFAULT_SERVICE = "keel"
# The private run kwarg (not shown by the API) holding the W3C trace context of the request that
# created the run: every attempt's run span, in whichever process, is a child of it.
TRACE_CONTEXT = "keel_trace_context"
CARRIED = ("traceparent", "tracestate")


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    env = os.environ if env is None else env
    if env.get(DISABLED, "").strip().lower() == "true":
        return False
    return any(env.get(name) for name in ENDPOINTS)


def _provider() -> tuple[TracerProvider, SpanProcessor]:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from keel import __version__
    from keel.tracing.export import SpanExporter

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over these defaults.
    defaults = Resource({SERVICE_NAME: DEFAULT_SERVICE, "service.version": __version__})
    provider = TracerProvider(resource=defaults.merge(Resource.create()), shutdown_on_exit=False)
    processor = BatchSpanProcessor(SpanExporter())
    provider.add_span_processor(processor)
    return provider, processor


@cache
def _propagator() -> TextMapPropagator:
    """W3C trace context (`traceparent`, `tracestate`): what runs store and requests carry."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def trace_id_of(carrier: Mapping[str, Any] | None) -> str | None:
    """The trace id a stored `traceparent` names (version-traceid-spanid-flags), if any."""
    parent = (carrier or {}).get("traceparent")
    parts = parent.split("-") if isinstance(parent, str) else []
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class Tracing:
    """Off (`Tracing.off()`): `enabled` is False and every method costs a call at most."""

    def __init__(
        self, provider: TracerProvider | None = None, processor: SpanProcessor | None = None
    ) -> None:
        """`processor`: the one of `provider`'s span processors that Keel's spans
        (keel.tracing.records) go to, finished."""
        self.provider = provider
        self.records: SpanRecords | None = None
        if provider is not None and processor is not None:
            from keel.tracing.records import SpanRecords

            self.records = SpanRecords(provider, processor)

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    @classmethod
    def from_env(cls) -> Tracing:
        return cls(*_provider()) if configured() else cls()

    @property
    def enabled(self) -> bool:
        return self.records is not None

    def close(self) -> None:
        """Export what is buffered and stop (at a process's stop)."""
        if self.provider is not None:
            self.provider.shutdown()

    # ------------------------------------------------------------ propagation
    def carrier(self, headers: Mapping[str, str]) -> dict[str, str]:
        """What a run created now stores to continue the trace: the current span's context
        (the request's span) when on; else the client's own `traceparent`, passed along."""
        if self.enabled:
            out: dict[str, str] = {}
            _propagator().inject(out)
            if out:
                return out
        return {k: headers[k] for k in CARRIED if headers.get(k)}

    @staticmethod
    def extract(carrier: Mapping[str, str]) -> Context:
        return _propagator().extract(carrier)

    def request_span(
        self, name: str, attributes: dict[str, Any], carrier: Mapping[str, str]
    ) -> Span:
        """An HTTP request's server span, a child of the client's trace context (`carrier`:
        its `traceparent` and `tracestate`), if any; the caller makes it current and ends it."""
        assert self.records is not None
        from opentelemetry.trace import SpanKind

        return self.records.start(name, SpanKind.SERVER, self.extract(carrier), attributes)

    @contextmanager
    def fired(self, name: str, attributes: Mapping[str, Any]) -> Iterator[dict[str, str]]:
        """A span for runs Keel creates by itself (a cron's or a trigger's firing), the root of
        a trace of its own; yields the context those runs store (TRACE_CONTEXT) to continue it:
        empty when off. An exception leaving the block is recorded on the span."""
        if self.records is None:
            yield {}
            return
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind

        from keel.tracing.records import current

        span = self.records.start(name, SpanKind.PRODUCER, Context(), dict(attributes))
        with current(span):
            carrier: dict[str, str] = {}
            _propagator().inject(carrier)
            yield carrier

    # ---------------------------------------------------------------- the run
    @contextmanager
    def run_span(self, run: Row, worker_id: str) -> Iterator[Span | None]:
        """One attempt at a run: its span (current for the block, a child of the trace context
        the run carries) and the run's ids on every log line of the block (keel.logs)."""
        carrier = run["kwargs"].get(TRACE_CONTEXT) or {}
        if self.records is None:
            with logs.run_context(run, trace_id_of(carrier)):
                yield None
            return
        from opentelemetry.trace import SpanKind

        from keel.tracing.records import current

        attrs = {**_run_attributes(run), "keel.worker_id": worker_id}
        name = "run " + _graph(run)
        span = self.records.start(name, SpanKind.INTERNAL, self.extract(carrier), attrs)
        trace_id = f"{span.get_span_context().trace_id:032x}"
        with current(span), logs.run_context(run, trace_id):
            yield span

    def run_ended(self, status: str, error: Mapping[str, Any] | None) -> None:
        """The attempt's outcome on its span (current: called inside `run_span`)."""
        if self.records is None:
            return
        from opentelemetry.trace import Status, StatusCode, get_current_span

        span = get_current_span()

        span.set_attribute("keel.run.status", status)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{error['error']}: {error['message']}"))

    def callbacks(self) -> list[Any]:
        """LangChain callback handlers for the current run's graph (node, tool, model spans);
        none when the run span is not recorded (its trace was not sampled): no dispatch cost."""
        if self.records is None:
            return []
        from opentelemetry.trace import get_current_span

        from keel.tracing.callbacks import SpanHandler
        from keel.tracing.records import Current

        span = get_current_span()
        if not (isinstance(span, Current) and span.is_recording()):
            return []
        if not span.record.context.trace_flags.sampled:
            return []
        return [SpanHandler(self.records, span.record)]


def _graph(run: Row) -> str:
    configurable = (run["kwargs"].get("config") or {}).get("configurable") or {}
    return str(configurable.get("graph_id") or "unknown")


def _run_attributes(run: Row) -> dict[str, Any]:
    return {
        "keel.run_id": run["run_id"],
        "keel.thread_id": run["thread_id"],
        "keel.assistant_id": run["assistant_id"],
        "keel.graph_id": _graph(run),
        "keel.run.attempt": int(run["attempt"]),
    }
