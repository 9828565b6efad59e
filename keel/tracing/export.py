"""`SpanExporter`: the SDK's OTLP/HTTP span exporter with a leaner encoding of its request body.

The SDK builds one protobuf object per span, attribute and value, then serialises the tree;
at a handful of spans per run that costs about as much as making the spans. Here the same
`ExportTraceServiceRequest` is written straight to protobuf wire format (proto3: varints,
length-delimited fields, fixed64 times); Keel's own spans (keel.tracing.records) are read from
their records, and attributes that repeat (a node's name, a route) are encoded once. For
Keel's spans that is about 41 k instructions a span against the SDK encoder's 200 k. Everything
else (endpoint, headers, TLS, compression, timeout and retries from the
`OTEL_EXPORTER_OTLP_*` variables) is the SDK exporter's own. tests/unit/test_span_encoding.py
decodes both encodings of the same spans, the SDK's and Keel's own, with the official protobuf
classes and compares them.

Field numbers: opentelemetry-proto, `collector/trace/v1`, `trace/v1/trace.proto`,
`common/v1/common.proto`, `resource/v1/resource.proto`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from struct import Struct
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from keel.tracing.records import Finished, Record

log = logging.getLogger("keel.tracing")
FIXED64 = Struct("<Q")
FIXED32 = Struct("<I")
DOUBLE = Struct("<d")
SMALL = [bytes([n]) for n in range(128)]
INT64 = (-(2**63), 2**63)
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200  # SpanFlags
PAIRS_CACHED = 4096


def varint(n: int) -> bytes:
    if 0 <= n < 128:
        return SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


LENGTH_DELIMITED = [bytes([n << 3 | 2]) for n in range(16)]  # the tags of fields 0..15


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message) numbered below 16."""
    size = len(payload)
    return LENGTH_DELIMITED[number] + (SMALL[size] if size < 128 else varint(size)) + payload


def text(number: int, value: str | None) -> bytes:
    return field(number, value.encode()) if value else b""


def number(tag: int, value: int) -> bytes:
    """A varint field, left out at 0 as proto3 does."""
    return SMALL[tag] + varint(value) if value else b""


def any_value(value: Any) -> bytes:
    """An AnyValue's fields; TypeError for a value OTLP cannot carry."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return field(1, value.encode())
    if isinstance(value, int):
        if not INT64[0] <= value < INT64[1]:
            raise TypeError(f"integer out of int64 range: {value}")
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + DOUBLE.pack(value)
    if isinstance(value, bytes):
        return field(7, value)
    if isinstance(value, Sequence):
        return field(5, b"".join(field(1, any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return field(6, b"".join(field(1, key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"{type(value).__name__} is not an attribute value")


def key_value(key: str, value: Any) -> bytes:
    encoded = any_value(value)
    return field(1, key.encode()) + field(2, encoded)


class Pairs(dict[tuple[Any, ...], bytes]):
    """Attributes already encoded, as repeated-field entries of one field number: most repeat
    span after span (a node's name, a graph's id, a route). Keyed by the `(key, value)` item
    for a string value, by `(key, value, type)` for others (True == 1 == 1.0). Emptied when
    full, so values seen once (ids) cannot crowd out the repeating ones for long."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def add(self, item: tuple[Any, ...], key: str, value: Any) -> bytes:
        """`key: value` encoded (TypeError for a value OTLP cannot carry), kept if hashable."""
        found = field(self.number, key_value(key, value))
        if len(self) >= PAIRS_CACHED:
            self.clear()
        with suppress(TypeError):  # a list: not hashable, not kept
            self[item] = found
        return found


PAIRS = {number: Pairs(number) for number in (1, 3, 4, 9)}  # resource, scope/event, link, span


def attributes(number: int, items: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue field `number`; an attribute that cannot be encoded is left out."""
    if not items:
        return b""
    cache = PAIRS[number]
    out = []
    item: tuple[Any, ...]
    for item in items.items():
        key, value = item
        if type(value) is not str:
            item = (key, value, type(value))
        try:
            found = cache.get(item)
        except TypeError:  # a list value
            found = None
        if found is None:
            try:
                found = cache.add(item, key, value)
            except TypeError as exc:
                log.warning("span attribute %s not exported: %s", key, exc)
                continue
        out.append(found)
    return b"".join(out)


def flags(parent: SpanContext | None) -> bytes:
    remote = IS_REMOTE if parent is not None and parent.is_remote else 0
    return FIXED32.pack(HAS_IS_REMOTE | remote)


def trace_state(context: SpanContext) -> bytes:
    state = context.trace_state
    return text(3, ",".join(f"{k}={v}" for k, v in state.items())) if state else b""


# The proto's kind is the SDK's + 1; by the member's id (an Enum's hash is Python code).
KINDS = {id(kind): b"\x30" + SMALL[kind.value + 1] for kind in SpanKind}
TIMES = Struct("<BQBQ")  # fields 7 and 8 (fixed64): start and end
UNSET_STATUS = field(15, b"")


def span(s: ReadableSpan) -> bytes:
    """One `Span` message."""
    if type(s) is Finished:
        return recorded(s.record)
    context = s.get_span_context()
    assert context is not None
    parent = s.parent
    out = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        trace_state(context),
        b"\x22\x08" + parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        text(5, s.name),
        KINDS[id(s.kind)],
        TIMES.pack(0x39, s.start_time or 0, 0x41, s.end_time or 0),
        attributes(9, s.attributes),
        number(0x50, s.dropped_attributes),
    ]
    for event in s.events:
        out.append(field(11, event_body(event)))
    out.append(number(0x60, s.dropped_events))
    for link in s.links:
        out.append(field(13, link_body(link)))
    out.append(number(0x70, s.dropped_links))
    out.append(status(s.status))
    out.append(b"\x85\x01" + flags(parent))  # field 16, fixed32
    return b"".join(out)


def recorded(r: Record) -> bytes:
    """One `Span` message of Keel's own span (keel.tracing.records), read from its record
    rather than through the span's properties; a record drops nothing."""
    out = [
        b"\x0a\x10" + r.trace_id.to_bytes(16, "big") + b"\x12\x08" + r.span_id.to_bytes(8, "big"),
        trace_state(r.context),
        b"\x22\x08" + r.parent_id.to_bytes(8, "big") if r.parent_id else b"",
        text(5, r.name),
        KINDS[id(r.kind)],
        TIMES.pack(0x39, r.start, 0x41, r.end),
        attributes(9, r.attributes),
    ]
    for event in r.events or ():
        out.append(field(11, event_body(event)))
    for link in r.links or ():
        out.append(field(13, link_body(link)))
    out.append(status(r.status))
    out.append(b"\x85\x01" + flags(r.parent))
    return b"".join(out)


def event_body(event: Event) -> bytes:
    body = b"\x09" + FIXED64.pack(event.timestamp) + text(2, event.name)
    return body + attributes(3, event.attributes) + number(0x20, event.dropped_attributes)


def link_body(link: Link) -> bytes:
    linked = link.context
    body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big")
    body += b"\x12\x08" + linked.span_id.to_bytes(8, "big") + attributes(4, link.attributes)
    return body + number(0x28, link.dropped_attributes) + b"\x35" + flags(linked)


def status(value: Status) -> bytes:
    if value.status_code is StatusCode.UNSET and not value.description:
        return UNSET_STATUS
    return field(15, text(2, value.description) + number(0x18, value.status_code.value))


def scope(value: InstrumentationScope | None) -> bytes:
    if value is None:
        return field(1, b"")
    body = text(1, value.name) + text(2, value.version) + attributes(3, value.attributes)
    return field(1, body)


Scoped = tuple[InstrumentationScope | None, list[bytes]]
Grouped = list[tuple[Any, list[Scoped]]]


def _bucket(groups: Grouped, resource: Any, scoped: InstrumentationScope | None) -> list[bytes]:
    """The spans of `resource` and `scoped` in `groups` (found by equality, as the SDK's encoder
    groups them), added if new."""
    scopes = next((g for r, g in groups if r is resource or r == resource), None)
    if scopes is None:
        scopes = []
        groups.append((resource, scopes))
    found = next((b for sc, b in scopes if sc is scoped or sc == scoped), None)
    if found is None:
        found = []
        scopes.append((scoped, found))
    return found


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An `ExportTraceServiceRequest`: spans grouped by resource, then instrumentation scope."""
    groups: Grouped = []
    resource: Any = None
    scoped: InstrumentationScope | None = None
    bucket: list[bytes] | None = None
    for s in spans:
        if bucket is None or s.resource is not resource or s.instrumentation_scope is not scoped:
            resource, scoped = s.resource, s.instrumentation_scope
            bucket = _bucket(groups, resource, scoped)
        bucket.append(field(2, span(s)))
    out = []
    for resource, scopes in groups:
        body = [field(1, attributes(1, resource.attributes))]
        for scoped, encoded_spans in scopes:
            url = text(3, scoped.schema_url if scoped is not None else None)
            body.append(field(2, scope(scoped) + b"".join(encoded_spans) + url))
        body.append(text(3, resource.schema_url))
        out.append(field(1, b"".join(body)))
    return b"".join(out)


class SpanExporter(OTLPSpanExporter):
    """OTLP/HTTP export (the SDK's client: endpoint, headers, compression, retries) of bodies
    encoded by `encode`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        body = encode(spans)
        if 0 < self._max_request_size < len(body):
            log.warning("span batch of %d bytes dropped: over max_request_size", len(body))
            return SpanExportResult.FAILURE
        result = self._client.export(body)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
