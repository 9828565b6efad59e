"""Protocol events: produced by the worker for a v3 run, read back as wire events.

Worker side: a run started with `run.start` streams every LangGraph mode (plus `tools`, and
`messages` as LangGraph's content-block events) with subgraphs on; each part becomes one or
more protocol events stored in the run's event log under the name `v3:<method>` with the
event's `params` (namespace, timestamp, data, node?) as data. The run's own `metadata` and
`error` events stay as they are; `error` reads back as the root `lifecycle` `failed` event
(its timestamp is the reading's), and a runs-API run's `metadata` as `running`.

Read side: the wire `seq` of a stored event is thread-wide and derived from what is durable:
`ordinal << 32 | local`, where `ordinal` is the run's number on its thread (`thread_ordinal`,
given at creation, never reused) and `local` the event's id in its run's log (attempt n of a
recovered run numbers its events from (n - 1) << 32, folded here to (n - 1) << 27). Replaying
after `since` is therefore a read of the event log, valid in any process and after kill -9.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_protocol import Checkpoint, InputRequestedData, UpdatesData
from langgraph._internal._constants import CONFIG_KEY_STREAM_MESSAGES_V2
from langgraph.types import Command

from keel.execution import INTERRUPT, Publish, StreamTranslator
from keel.graphs import Graph
from keel.serde import loads
from keel.storage.tx import Row
from keel.streams import TERMINAL

PROTOCOL_MODE = "v3"  # the run's internal stream_mode marking a v3 run (set by run.start)
PREFIX = "v3:"
GRAPH_MODES = ["checkpoints", "custom", "messages", "tasks", "tools", "updates", "values"]
RUN_BITS = 32
ATTEMPT_BITS = 27  # events of one attempt: up to 2**27; attempts: up to 32
TERMINAL_LOCAL = (1 << RUN_BITS) - 1  # a terminal lifecycle synthesized from the run's status


def now_ms() -> int:
    return int(time.time() * 1000)


def params(namespace: list[str] | tuple[str, ...], data: Any, node: str | None = None) -> Row:
    out: Row = {"namespace": list(namespace), "timestamp": now_ms(), "data": data}
    if node is not None:
        out["node"] = node
    return out


class ProtocolTranslator(StreamTranslator):
    """The worker's translator for a v3 run: stream parts in, `v3:<method>` events out."""

    def __init__(self, publish: Publish) -> None:
        super().__init__(["values"], True, publish)
        self.interrupted = False

    def internal_modes(self) -> list[str]:
        return list(GRAPH_MODES)

    def stream_options(self) -> Row:
        return {"version": "v2"}

    def configure(self, config: Row) -> Row:
        configurable = {**config.get("configurable", {}), CONFIG_KEY_STREAM_MESSAGES_V2: True}
        return {**config, "configurable": configurable}

    async def graph_input(self, graph: Graph, config: Row, graph_input: Any) -> Any:
        """`run.start` on a thread waiting at an interrupt resumes it with its input (the
        langgraph `RemoteGraph` sends `Command(resume=x)` as `input: x`). Decided when the run
        begins, so a run queued behind the one that interrupted sees that interrupt."""
        if graph_input is None or isinstance(graph_input, Command):
            return graph_input
        thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
        state = await graph.aget_state(thread)  # type: ignore[arg-type]
        return Command(resume=graph_input) if state.interrupts else graph_input

    def emit(self, method: str, ns: Any, data: Any, node: str | None = None) -> None:
        self._publish(PREFIX + method, params(ns, data, node))

    def feed(self, part: Any) -> None:
        mode, ns, data = part["type"], tuple(part["ns"]), part["data"]
        if not ns and mode in ("values", "updates"):
            self.result.absorb(mode, data)
        if mode == "checkpoints":
            if not ns:
                self.checkpoint = data
            self.emit(mode, ns, _checkpoint(data))
        elif mode == "updates":
            self._updates(ns, data)
        elif mode == "messages":
            event, metadata = data
            # A whole message a node returned (not streamed by a chat model) is not carried,
            # as the reference: it is in `values` and `updates`.
            if not isinstance(event, BaseMessage):
                node = metadata.get("langgraph_node") if isinstance(metadata, dict) else None
                self.emit(mode, ns, event, node)
        elif mode == "custom":
            self.emit(mode, ns, data)  # as LangGraph: `custom:<name>` is `data["name"]`
        else:  # values, tasks, tools
            self.emit(mode, ns, data)

    def _updates(self, ns: tuple[str, ...], data: Any) -> None:
        if not isinstance(data, dict):
            return
        for node, values in data.items():
            if node == INTERRUPT:
                self._interrupts(ns, values)
            elif not node.startswith("__"):
                update: UpdatesData = {"node": node, "values": values}
                self.emit("updates", ns, update, node)

    def _interrupts(self, ns: tuple[str, ...], interrupts: Any) -> None:
        for interrupt in interrupts or ():
            value = getattr(interrupt, "value", None)
            requested: InputRequestedData = {
                "interrupt_id": str(getattr(interrupt, "id", "")),
                "payload": value,
            }
            # SDK 0.4.14 reads `value`: both keys are sent.
            self.emit("input.requested", ns, {**requested, "value": value})
            if not ns:
                self.interrupted = True

    def end(self) -> None:
        """The graph's stream ended normally: the root lifecycle's last event."""
        event = "interrupted" if self.interrupted else "completed"
        self.emit("lifecycle", (), {"event": event})


def _checkpoint(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    conf = (data.get("config") or {}).get("configurable") or {}
    parent = ((data.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
    metadata = data.get("metadata") or {}
    out: Checkpoint = {
        "id": str(conf.get("checkpoint_id", "")),
        "step": int(metadata.get("step", -1)),
        "source": metadata.get("source", "loop"),
    }
    if parent:
        out["parent_id"] = str(parent)
    return out


def make_translator(kwargs: Row, publish: Publish) -> StreamTranslator:
    """The translator a run's stream modes ask for."""
    modes = list(kwargs.get("stream_mode") or ["values"])
    if PROTOCOL_MODE in modes:
        translator = ProtocolTranslator(publish)
        translator.emit("lifecycle", (), {"event": "running"})
        return translator
    return StreamTranslator(modes, bool(kwargs.get("subgraphs")), publish)


# ----------------------------------------------------------------- read side
def thread_seq(ordinal: int, local: int) -> int:
    if local != TERMINAL_LOCAL:
        attempt, within = divmod(local, 1 << 32)
        local = (attempt << ATTEMPT_BITS) + within
    return (ordinal << RUN_BITS) | local


def split_seq(seq: int) -> tuple[int, int]:
    """(run ordinal, the run-local position) of a thread seq; the local part is in thread-seq
    form (compare it with `thread_seq(0, event.seq)`)."""
    return seq >> RUN_BITS, seq & ((1 << RUN_BITS) - 1)


def wire(seq: int, method: str, p: Row) -> Row:
    return {"type": "event", "event_id": str(seq), "seq": seq, "method": method, "params": p}


def stored_to_wire(ordinal: int, local: int, name: str, data: bytes, protocol: bool) -> list[Row]:
    """The wire events of one stored run event (none for what the protocol does not carry).
    A v3 run logs its own `running`; a runs-API run's `metadata` event stands for it."""
    seq = thread_seq(ordinal, local)
    if name.startswith(PREFIX):
        method, p = name[len(PREFIX) :], loads(data)
        return [wire(seq, method, p)]
    if name == "metadata" and not protocol:
        return [wire(seq, "lifecycle", params((), {"event": "running"}))]
    if name == "error":
        err = loads(data)
        message = err.get("message") if isinstance(err, dict) else None
        return [wire(seq, "lifecycle", params((), {"event": "failed", "error": str(message)}))]
    return []


def terminal_from_status(ordinal: int, status: str, protocol: bool) -> Row | None:
    """The terminal lifecycle event a run's log lacks: a cancelled run's, and a run started by
    the runs API (whose log has no lifecycle) once it ended. None when the log has it."""
    if status in ("error", "timeout") or (protocol and status == "success"):
        return None
    if status == "success":
        data: Row = {"event": "completed"}
    elif status in TERMINAL:
        data = {"event": "failed", "error": f"run {status}"}
    else:
        return None
    return wire(thread_seq(ordinal, TERMINAL_LOCAL), "lifecycle", params((), data))
