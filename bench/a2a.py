"""`python -m bench a2a`: what A2A costs over the plain API (docs/protocols.md, "A2A").

One `keel serve` on SQLite with the 3-node graph of examples/agents/pipeline.py. Interleaved,
one at a time: an A2A `SendMessage` (a data part: the graph has no `messages` input) through the
official `a2a-sdk` client, and a `runs.wait` (stateless) through `langgraph-sdk`; each creates a
run and waits for its final state. The figure: the p50 ratio A2A / runs.wait (target <= 1.5x).

Results: bench/results/a2a.md and a2a.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import a2a_pb2 as pb
from langgraph_sdk import get_client

from bench.single import ROOT, KeelPipeline, measure_on_sqlite, write_results


def _request() -> pb.SendMessageRequest:
    part = pb.Part()
    part.data.struct_value.update({"topic": "tides"})
    msg = pb.Message(message_id=str(uuid.uuid4()), role=pb.Role.ROLE_USER, parts=[part])
    return pb.SendMessageRequest(message=msg)


async def _a2a_once(client: Any) -> float:
    start = time.perf_counter()
    events = [ev async for ev in client.send_message(_request())]
    elapsed = time.perf_counter() - start
    if events[-1].task.status.state != pb.TaskState.TASK_STATE_COMPLETED:
        raise RuntimeError(f"A2A task did not complete: {events[-1]}")
    return elapsed


async def _wait_once(client: Any) -> float:
    start = time.perf_counter()
    out = await client.runs.wait(None, "pipeline", input={"topic": "tides"})
    elapsed = time.perf_counter() - start
    if out.get("summary") != "3 steps done":
        raise RuntimeError(f"runs.wait did not finish the pipeline: {out}")
    return elapsed


async def measure(url: str, runs: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60.0) as http:
        card = await A2ACardResolver(http, f"{url}/a2a/pipeline").get_agent_card()
        a2a = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        sdk = get_client(url=url, api_key=None)
        try:
            for _ in range(3):  # warm-up
                await _a2a_once(a2a)
                await _wait_once(sdk)
            a2a_s, wait_s = [], []
            for _ in range(runs):
                a2a_s.append(await _a2a_once(a2a))
                wait_s.append(await _wait_once(sdk))
        finally:
            await sdk.aclose()
    a2a_p50 = statistics.median(a2a_s) * 1000
    wait_p50 = statistics.median(wait_s) * 1000
    return {
        "runs": runs,
        "a2a_send_p50_ms": round(a2a_p50, 1),
        "runs_wait_p50_ms": round(wait_p50, 1),
        "ratio": round(a2a_p50 / wait_p50, 2),
    }


def report(result: dict[str, Any], sdk_version: str) -> str:
    return "\n".join(
        [
            "# A2A `SendMessage` vs `runs.wait` (`python -m bench a2a`)",
            "",
            f"SQLite, one `keel serve`, the 3-node graph of examples/agents/pipeline.py; "
            f"{result['runs']} of each, interleaved, one at a time, after 3 warm-ups. A2A through "
            f"the `a2a-sdk` {sdk_version} client (JSON-RPC, A2A 1.0 names, a data part); "
            "runs.wait stateless through `langgraph-sdk`.",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| A2A SendMessage p50 | {result['a2a_send_p50_ms']} ms | |",
            f"| runs.wait p50 | {result['runs_wait_p50_ms']} ms | |",
            f"| ratio | {result['ratio']}x | <= 1.5x |",
            "",
        ]
    )


def main(argv: list[str]) -> int:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="python -m bench a2a")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "a2a.md")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/keel-bench-a2a"))
    args = parser.parse_args(argv)
    result = measure_on_sqlite(
        KeelPipeline, args.workdir, "a2a", lambda url: measure(url, args.runs)
    )
    result["a2a_sdk"] = version("a2a-sdk")
    write_results(args.out, report(result, result["a2a_sdk"]), result)
    return 0
