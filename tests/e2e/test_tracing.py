"""OpenTelemetry traces and JSON logs of a real Keel server (SQLite): its OTLP/HTTP exports reach
a real receiver in the test (tests/support/otlp.py), which decodes the protobuf; the span tree
of one run is asserted from the client's `traceparent` down to the tool and model calls."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.e2e.helpers import Client
from tests.graphs.traced import MODEL
from tests.support.otlp import OtlpReceiver, Span
from tests.support.server import KeelServer

GRAPHS = Path(__file__).parents[1] / "graphs"
SERVER, INTERNAL, CLIENT = 2, 1, 3  # span kinds (OTLP)
QUESTION = {"messages": [{"role": "user", "content": "hi"}]}


def traced_config(directory: Path) -> Path:
    """A config with the tracing graph only (the shared one's graph list stays as it is)."""
    config = directory / "keel.json"
    config.write_text(json.dumps({"graphs": {"traced": f"{GRAPHS / 'traced.py'}:graph"}}))
    return config


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "20",  # ms: exports follow the spans closely
        "OTEL_SERVICE_NAME": "keel-under-test",
    }


def traceparent() -> tuple[str, str, str]:
    """A client's W3C trace context: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def server(
    receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    workdir = tmp_path_factory.mktemp("tracing")
    env = {**otel_env(receiver), "KEEL_LOG_FORMAT": "json", "KEEL_LOG_LEVEL": "info"}
    srv = KeelServer(traced_config(workdir), workdir, env=env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def traced_run(server: KeelServer) -> AsyncIterator[tuple[Client, str, str, str]]:
    """One finished run of `traced`, created with a traceparent: (client, trace id, client's
    span id, thread id)."""
    header, trace_id, span_id = traceparent()
    sdk: Client = get_client(url=server.url, api_key=None, headers={"traceparent": header})
    try:
        thread = await sdk.threads.create()
        await sdk.runs.wait(thread["thread_id"], "traced", input=QUESTION)
        yield sdk, trace_id, span_id, thread["thread_id"]
    finally:
        await sdk.aclose()


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: list[Span], parent: Span, prefix: str = "") -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id and s.name.startswith(prefix)]


def run_done(spans: list[Span]) -> bool:
    names = {s.name for s in spans}
    return {"run traced", "POST /threads/{thread_id}/runs/wait"} <= names


async def test_the_span_tree_runs_from_the_client_to_the_model_and_tool_calls(
    receiver: OtlpReceiver, traced_run: tuple[Client, str, str, str]
) -> None:
    _, trace_id, client_span, thread_id = traced_run
    spans = await receiver.wait_for(trace_id, run_done)
    request = one(spans, "POST /threads/{thread_id}/runs/wait")
    assert request.parent_id == client_span and request.kind == SERVER
    assert request.attributes["http.route"] == "/threads/{thread_id}/runs/wait"
    assert request.attributes["http.request.method"] == "POST"
    assert request.attributes["http.response.status_code"] == 200
    assert request.resource["service.name"] == "keel-under-test"
    run = one(spans, "run traced")
    assert run.parent_id == request.span_id
    assert run.attributes["keel.thread_id"] == thread_id
    assert run.attributes["keel.graph_id"] == "traced"
    assert run.attributes["keel.run.attempt"] == 1
    assert run.attributes["keel.run.status"] == "success"
    assert {"keel.run_id", "keel.assistant_id", "keel.worker_id"} <= set(run.attributes)
    nodes = children(spans, run, "node ")
    assert [n.name for n in nodes].count("node model") == 2
    assert [n.name for n in nodes].count("node tools") == 1
    steps = sorted(n.attributes["langgraph.step"] for n in nodes)
    assert steps == [1, 2, 3]
    models = [c for n in nodes if n.name == "node model" for c in children(spans, n)]
    assert [m.name for m in models] == [f"chat {MODEL}"] * 2
    for model in models:
        assert model.kind == CLIENT
        assert model.attributes["gen_ai.operation.name"] == "chat"
        assert model.attributes["gen_ai.request.model"] == MODEL
        assert model.attributes["gen_ai.usage.output_tokens"] == 7
    # input tokens: 10 per message shown to the model (1, then 3: question, call, result)
    assert sorted(m.attributes["gen_ai.usage.input_tokens"] for m in models) == [10, 30]
    tools = children(spans, one(spans, "node tools"))
    assert [t.name for t in tools] == ["execute_tool add"]
    assert tools[0].attributes["gen_ai.operation.name"] == "execute_tool"
    assert tools[0].attributes["gen_ai.tool.name"] == "add"
    assert tools[0].attributes["gen_ai.tool.call.id"] == "call_add"


async def test_a_request_without_traceparent_starts_its_own_trace(
    receiver: OtlpReceiver, server: KeelServer
) -> None:
    sdk: Client
    async with get_client(url=server.url, api_key=None) as sdk:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(thread["thread_id"], "traced", input={"messages": []})
        await sdk.runs.join(thread["thread_id"], run["run_id"])
    assert "keel_trace_context" not in run["kwargs"]  # private: the API does not show it

    def of_run(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.attributes.get("keel.run_id") == run["run_id"]]

    spans = of_run(await receiver.wait_for(None, lambda spans: bool(of_run(spans))))
    trace = await receiver.wait_for(spans[0].trace_id, lambda t: len(t) > 1)
    request = one(trace, "POST /threads/{thread_id}/runs")
    assert request.parent_id == ""  # a new trace, rooted at the request that created the run
    assert spans[0].parent_id == request.span_id


async def test_json_logs_carry_the_run_and_trace_ids(
    server: KeelServer, traced_run: tuple[Client, str, str, str]
) -> None:
    _, trace_id, _, thread_id = traced_run
    lines = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line
    tool_lines = [
        line
        for line in lines
        if line["logger"] == "tests.traced" and line.get("trace_id") == trace_id
    ]
    assert len(tool_lines) == 1
    assert tool_lines[0]["message"] == "adding 2 and 3"
    assert tool_lines[0]["thread_id"] == thread_id
    assert tool_lines[0]["level"] == "warning"
    assert tool_lines[0]["run_id"]
    # Lines logged outside a run (the start, uvicorn's) have no run ids.
    started = next(line for line in lines if line["message"].startswith("Keel listening"))
    assert "run_id" not in started


@pytest.fixture(scope="module")
def trigger_server(
    receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    """`traced`, and a sleep-time trigger running `echo` after each of its runs."""
    workdir = tmp_path_factory.mktemp("tracing-trigger")
    config = workdir / "keel.json"
    trigger = {"graph": "echo", "watch": ["traced"], "every_n_runs": 1}
    graphs = {
        "traced": f"{GRAPHS / 'traced.py'}:graph",
        "echo": f"{GRAPHS / 'config_echo.py'}:graph",
    }
    background = {"triggers": {"after": trigger}}
    config.write_text(json.dumps({"graphs": graphs, "background": background}))
    srv = KeelServer(config, workdir, env=otel_env(receiver))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_a_triggers_run_continues_the_trace_of_its_firing(
    receiver: OtlpReceiver, trigger_server: KeelServer
) -> None:
    header, client_trace, _ = traceparent()
    sdk: Client
    async with get_client(url=trigger_server.url, headers={"traceparent": header}) as sdk:
        thread = await sdk.threads.create()
        await sdk.runs.wait(thread["thread_id"], "traced", input=QUESTION)

    def fired(spans: list[Span]) -> bool:
        return any(s.attributes.get("keel.trigger.subject") == thread["thread_id"] for s in spans)

    spans = await receiver.wait_for(None, fired)
    [firing] = [s for s in spans if s.attributes.get("keel.trigger.subject") == thread["thread_id"]]
    assert firing.name == "trigger after" and firing.parent_id == ""  # a trace of its own
    assert firing.trace_id != client_trace
    trace = await receiver.wait_for(firing.trace_id, lambda t: "run echo" in {s.name for s in t})
    assert one(trace, "run echo").parent_id == firing.span_id
