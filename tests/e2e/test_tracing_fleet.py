"""Traces across processes (PostgreSQL): an API process that executes nothing and two `keel
worker` processes export to one OTLP receiver. A run created with a client's `traceparent` is
executed by a worker, and after that worker is killed (-9) by the other one as attempt 2: each
attempt's run span is a child of the API process's request span, in the client's trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.e2e.helpers import Client, poll, run_status
from tests.e2e.test_tracing import children, one, otel_env, traceparent
from tests.support.fleet import Fleet, start_fleet, stop_fleet
from tests.support.gate import Gate
from tests.support.otlp import OtlpReceiver, Span
from tests.support.postgres import PgCluster

Traced = tuple[Fleet, OtlpReceiver]
CREATE = "POST /threads/{thread_id}/runs"


@pytest.fixture(scope="module")
def fleet(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    workdir = tmp_path_factory.mktemp("tracing-fleet")
    with OtlpReceiver() as receiver:
        env = {
            **otel_env(receiver),
            "KEEL_WORKERS": "1",
            "KEEL_MODEL": "",
            "KEEL_LEASE_SECONDS": "1.5",  # short: a killed worker's run is taken over quickly
        }
        f = start_fleet(pg_cluster.create_database(), workdir, env, apis=1)
        try:
            yield f, receiver
        finally:
            stop_fleet(f)


@pytest.fixture
async def traced_client(fleet: Traced) -> AsyncIterator[tuple[Client, str, str]]:
    """A client sending a traceparent: (client, trace id, client's span id)."""
    header, trace_id, span_id = traceparent()
    url = fleet[0].apis[0].url
    sdk: Client = get_client(url=url, api_key=None, headers={"traceparent": header})
    try:
        yield sdk, trace_id, span_id
    finally:
        await sdk.aclose()


def run_spans(spans: list[Span]) -> dict[int, Span]:
    return {s.attributes["keel.run.attempt"]: s for s in spans if s.name == "run slow"}


async def test_a_worker_process_continues_the_trace_of_the_request(
    fleet: Traced, traced_client: tuple[Client, str, str]
) -> None:
    workers, receiver = fleet[0].workers, fleet[1]
    client, trace_id, client_span = traced_client
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0})
    await client.runs.join(tid, run["run_id"])
    spans = await receiver.wait_for(trace_id, lambda s: 1 in run_spans(s) and CREATE in str(s))
    request = one(spans, CREATE)
    assert request.parent_id == client_span
    span = run_spans(spans)[1]
    assert span.parent_id == request.span_id
    assert span.attributes["keel.run_id"] == run["run_id"]
    # Executed by a worker process (the API process executes nothing).
    assert span.attributes["keel.worker_id"].split(":")[1] in {str(w.pid) for w in workers}
    nodes = sorted(n.name for n in children(spans, span))
    assert nodes == ["node step1", "node step2", "node step3"]


async def test_attempt_two_after_a_kill_continues_the_same_trace(
    fleet: Traced, traced_client: tuple[Client, str, str], tmp_path: Path
) -> None:
    processes, receiver = fleet
    client, trace_id, client_span = traced_client
    gate = Gate(tmp_path / "gate")
    gate.open("step1")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0}, config=gate.config)
    # Held at step2 with step1 checkpointed: attempt 2 resumes at step2.
    await poll(
        lambda: client.threads.get_state(tid),
        lambda state: "step1:" in (state["values"] or {}).get("log", []),
    )
    await run_status(client, tid, run["run_id"], "running")
    # The killed attempt's step1 span has been exported (it is checked below).
    await receiver.wait_for(trace_id, lambda s: "node step1" in {x.name for x in s})
    holder = await processes.executor(run["run_id"])
    assert holder is not None
    victim = processes.worker_of(holder)
    victim.kill9()
    survivor = await poll(
        lambda: processes.executor(run["run_id"]), lambda w: w not in (None, holder)
    )
    gate.open()
    await client.runs.join(tid, run["run_id"])
    victim.start()  # back for the module's other tests
    spans = await receiver.wait_for(trace_id, lambda s: 2 in run_spans(s))
    request = one(spans, CREATE)
    assert request.parent_id == client_span
    second = run_spans(spans)[2]  # attempt 1's span never ended: its process was killed
    assert second.parent_id == request.span_id
    assert second.attributes["keel.worker_id"] == survivor != holder
    assert second.attributes["keel.run.status"] == "success"
    assert sorted(n.name for n in children(spans, second)) == ["node step2", "node step3"]
    # The killed attempt's step1 is in the same trace, below the killed attempt's run span
    # (never exported: its process died before the span ended).
    step1 = one(spans, "node step1")
    assert step1.parent_id not in {s.span_id for s in spans}
