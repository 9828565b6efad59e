"""One run seen by a client, for `python -m bench threadstream`: through the v3 thread stream
(the SDK's `client.threads.stream`, SSE or WebSocket transport) or through `runs.stream`.

Each run gets a new thread whose id the client mints (v3: the SDK's lazy creation by
`run.start`; runs.stream: `if_not_exists="create"`). The clock starts just before the request
that starts the run (`run.start` / `runs.stream`) and stamps every event of the run received.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

# the transports measured, by the names the results use
V3_SSE = "v3 SSE"
V3_WS = "v3 WebSocket"
RUNS_STREAM = "runs.stream"
TRANSPORTS = (V3_SSE, V3_WS, RUNS_STREAM)
SDK_TRANSPORT: dict[str, Literal["sse", "websocket"]] = {V3_SSE: "sse", V3_WS: "websocket"}
ENDS = ("completed", "failed", "interrupted")


@dataclass
class Timeline:
    """When a run's events arrived (ms after the start was sent) and how it ended."""

    first_ms: float | None = None  # the run's first event (lifecycle `running` / `metadata`)
    first_values_ms: float | None = None  # the graph's first state (`values`)
    custom: int = 0
    last_custom_ms: float | None = None
    end: str = ""  # completed | failed | interrupted | error | (empty: no end seen)
    last_values: Any = None
    kinds: dict[str, int] = field(default_factory=dict)
    resume_gaps: int = 0  # times the server dropped the stream as too slow (the SDK resumed)

    def see(self, kind: str, data: Any, start: float) -> None:
        ms = (time.perf_counter() - start) * 1000
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if self.first_ms is None:
            self.first_ms = ms
        if kind == "values":
            self.last_values = data
            if self.first_values_ms is None:
                self.first_values_ms = ms
        elif kind == "custom":
            self.custom += 1
            self.last_custom_ms = ms

    def events_per_s(self) -> float | None:
        if not self.custom or not self.last_custom_ms:
            return None
        return self.custom / (self.last_custom_ms / 1000)


def _root_end(event: Any) -> str | None:
    params = event.get("params") or {}
    if event.get("method") != "lifecycle" or params.get("namespace"):
        return None
    state = (params.get("data") or {}).get("event")
    return state if state in ENDS else None


async def v3_run(
    client: LangGraphClient, transport: str, graph: str, body: Any, channels: list[str]
) -> Timeline:
    """`run.start` then one subscription to `channels` (+ lifecycle), until the root's end."""
    line = Timeline()
    kind = SDK_TRANSPORT[transport]
    async with client.threads.stream(assistant_id=graph, transport=kind) as thread:
        start = time.perf_counter()
        await thread.run.start(input=body)
        async for event in thread.subscribe([*channels, "lifecycle"]):
            ended = _root_end(event)
            if ended is not None:
                line.end = ended
                break
            line.see(event["method"], event["params"].get("data"), start)
    return line


async def runs_stream_run(
    client: LangGraphClient, graph: str, body: Any, modes: list[StreamMode]
) -> Timeline:
    """`runs.stream` on a new thread, until the server closes the stream."""
    line = Timeline()
    start = time.perf_counter()
    parts = client.runs.stream(
        str(uuid.uuid4()),
        graph,
        input=body,
        stream_mode=modes,
        if_not_exists="create",
    )
    async for part in parts:
        if part.event == "error":
            line.end = "error"
            break
        line.see(part.event, part.data, start)
    else:
        line.end = "completed"
    return line


class ResumeGaps(logging.Handler):
    """Counts the SDK's warnings that the server dropped a too-slow stream (`resume_gap`);
    the SDK then reconnects with `since` and loses nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "resume_gap" in record.getMessage():
            self.count += 1

    def __enter__(self) -> ResumeGaps:
        logging.getLogger("langgraph_sdk").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("langgraph_sdk").removeHandler(self)
