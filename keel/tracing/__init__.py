"""OpenTelemetry traces (docs/operations.md, "Traces"): `Tracing` is built per app (or per
`keel worker` process) from the standard `OTEL_*` variables; off, it does nothing and no span is
made. The HTTP request spans are keel/http/tracing.py's; the run span is `Tracing.run_span`;
node, tool and model spans come from the LangChain callback handler in `callbacks.py`. All are
records (`records.py`), not the SDK's live spans; `export.py` encodes them for OTLP/HTTP."""

from keel.tracing.setup import TRACE_CONTEXT, Tracing

__all__ = ["TRACE_CONTEXT", "Tracing"]
