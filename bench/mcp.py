"""`python -m bench mcp`: what serving a graph over MCP costs (docs/protocols.md, MCP server).

One `keel serve` on SQLite with the 3-node example graph (examples/agents/pipeline.py). The
same run, interleaved one at a time: an MCP `tools/call` of `pipeline` through the official `mcp`
client (streamable HTTP, one initialized session) and a `runs.wait` of it through `langgraph-sdk`.
Target: the tools/call p50 at most 1.5 x the runs.wait p50.

Results: bench/results/mcp.md and mcp.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from bench.single import ROOT, KeelPipeline, measure_on_sqlite, write_results

INPUT = {"topic": "bench"}


async def _timed(call: Any) -> float:
    start = time.perf_counter()
    result = await call
    elapsed = (time.perf_counter() - start) * 1000
    text = repr(result) if isinstance(result, dict) else str(result.content[0].text)
    if "3 steps done" not in text or getattr(result, "isError", False):
        raise RuntimeError(f"the run did not complete: {text}")
    return elapsed


async def measure(url: str, runs: int) -> dict[str, Any]:
    sdk = get_client(url=url, api_key=None)
    mcp_ms: list[float] = []
    wait_ms: list[float] = []
    try:
        async with (
            streamable_http_client(f"{url}/mcp") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for i in range(runs + 3):  # the first 3 of each are warm-up
                tool = await _timed(session.call_tool("pipeline", INPUT))
                wait = await _timed(sdk.runs.wait(None, "pipeline", input=INPUT))
                if i >= 3:
                    mcp_ms.append(tool)
                    wait_ms.append(wait)
    finally:
        await sdk.aclose()
    mcp_p50, wait_p50 = statistics.median(mcp_ms), statistics.median(wait_ms)
    return {
        "runs": runs,
        "mcp_tools_call_p50_ms": round(mcp_p50, 1),
        "runs_wait_p50_ms": round(wait_p50, 1),
        "ratio": round(mcp_p50 / wait_p50, 2),
        "mcp_client": version("mcp"),
        "langgraph_sdk": version("langgraph-sdk"),
    }


def report(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# MCP tools/call vs runs.wait (`python -m bench mcp`)",
            "",
            f"SQLite, one `keel serve`, the 3-node `pipeline` example graph; {result['runs']} "
            "of each, interleaved one at a time (after 3 warm-up pairs); the official `mcp` "
            f"client {result['mcp_client']} (streamable HTTP, one session) and langgraph-sdk "
            f"{result['langgraph_sdk']}.",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| runs.wait p50 | {result['runs_wait_p50_ms']} ms | |",
            f"| MCP tools/call p50 | {result['mcp_tools_call_p50_ms']} ms "
            f"({result['ratio']}x runs.wait) | <= 1.5x |",
            "",
        ]
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mcp")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mcp.md")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/keel-bench-mcp"))
    args = parser.parse_args(argv)
    result = measure_on_sqlite(
        KeelPipeline, args.workdir, "mcp", lambda url: measure(url, args.runs)
    )
    write_results(args.out, report(result), result)
    return 0
