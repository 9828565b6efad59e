"""The soak's load generator (bench/soak.py): steady mixed load on one server, in its own process.

    python -m bench.soak_load '{"url": ..., "clients": 8, "seconds": 600, "pace": 2.0,
                                "records": "/path/records.jsonl"}'

`clients` tasks, each with its own `langgraph-sdk` async client, repeat one iteration: a streamed
chat run on a fresh thread (`messages-tuple` tokens and custom events), a fresh thread plus a
6-step `runs.wait` (the timed create+wait), an interrupt/resume pair on a fresh thread. A client
starts an iteration every `pace` seconds (sleeping the rest; staggered so the clients spread
over the interval), so the rate is steady and set by the bench, not by how fast the server is.
Every other thread a client finishes with is deleted right away; the rest are left for the TTL.

Each finished operation is appended as a JSON line to `records` (epoch seconds `t`): `wait`,
`chat`, `resume` with `ms`; `kept` (a thread left for the TTL, with its `runs`); `deleted`;
`error` with `what`. The bench reads the file as it grows. The last stdout line is a summary.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, TextIO

from langgraph_sdk.client import LangGraphClient

from bench.chat_graph import CUSTOM_EVENTS
from bench.client import child_main, make_client
from bench.graphs import SIX_STEPS

CHAT_INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello soak"}]}


class Recorder:
    """Appends one JSON object per line, flushed at once (the bench tails the file)."""

    def __init__(self, path: Path) -> None:
        self.file: TextIO = path.open("a", encoding="utf-8")
        self.counts: dict[str, int] = {}
        self.first_error: str | None = None

    def add(self, op: str, **fields: Any) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1
        self.file.write(json.dumps({"t": round(time.time(), 3), "op": op, **fields}) + "\n")
        self.file.flush()

    def error(self, step: str, exc: BaseException) -> None:
        what = f"{step}: {type(exc).__name__}: {exc}"[:300]
        self.first_error = self.first_error or what
        self.add("error", what=what)

    def close(self) -> None:
        self.file.close()


class SoakClient:
    """One simulated user: fresh threads each iteration, every other one deleted afterwards."""

    def __init__(self, sdk: LangGraphClient, recorder: Recorder) -> None:
        self.sdk = sdk
        self.rec = recorder
        self.finished = 0

    async def done_with(self, thread_id: str, runs: int) -> None:
        self.finished += 1
        if self.finished % 2 == 0:
            await self.sdk.threads.delete(thread_id)
            self.rec.add("deleted")
        else:
            self.rec.add("kept", runs=runs)

    async def chat(self) -> None:
        t0 = time.perf_counter()
        thread = await self.sdk.threads.create()
        tokens = custom = 0
        async for part in self.sdk.runs.stream(
            thread["thread_id"],
            "chat",
            input=CHAT_INPUT,
            stream_mode=["messages-tuple", "custom"],
        ):
            if part.event == "messages":
                tokens += 1
            elif part.event == "custom":
                custom += 1
            elif part.event == "error":
                raise RuntimeError(f"run failed: {str(part.data)[:200]}")
        if tokens == 0 or custom != CUSTOM_EVENTS:
            raise RuntimeError(f"stream had {tokens} token and {custom} custom events")
        self.rec.add("chat", ms=round((time.perf_counter() - t0) * 1000, 2))
        await self.done_with(thread["thread_id"], 1)

    async def six(self) -> None:
        t0 = time.perf_counter()
        thread = await self.sdk.threads.create()
        result = await self.sdk.runs.wait(thread["thread_id"], "six", input={"topic": "soak"})
        ms = (time.perf_counter() - t0) * 1000
        if not isinstance(result, dict) or len(result.get("steps", [])) != SIX_STEPS:
            raise RuntimeError(f"unexpected result: {str(result)[:200]}")
        self.rec.add("wait", ms=round(ms, 2))
        await self.done_with(thread["thread_id"], 1)

    async def approval(self) -> None:
        thread = await self.sdk.threads.create()
        tid = thread["thread_id"]
        first = await self.sdk.runs.wait(tid, "approval", input={"topic": "soak"})
        if not isinstance(first, dict) or "__interrupt__" not in first:
            raise RuntimeError(f"no interrupt: {str(first)[:200]}")
        t0 = time.perf_counter()
        result = await self.sdk.runs.wait(tid, "approval", command={"resume": "yes"})
        if not isinstance(result, dict) or result.get("answer") != "yes":
            raise RuntimeError(f"resume did not finish the graph: {str(result)[:200]}")
        self.rec.add("resume", ms=round((time.perf_counter() - t0) * 1000, 2))
        await self.done_with(tid, 2)

    async def iteration(self) -> None:
        for name, step in (("chat", self.chat), ("six", self.six), ("approval", self.approval)):
            try:
                await step()
            except Exception as exc:
                self.rec.error(name, exc)
                await asyncio.sleep(0.5)

    async def loop(self, delay: float, pace: float, deadline: float) -> int:
        """Iterations started every `pace` seconds after `delay`, until `deadline` (monotonic)."""
        await asyncio.sleep(delay)
        iterations = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            await self.iteration()
            iterations += 1
            await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))
        return iterations


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    clients, pace = int(spec["clients"]), float(spec["pace"])
    recorder = Recorder(Path(spec["records"]))
    pool = [make_client(spec["url"], connections=2) for _ in range(clients)]
    deadline = time.monotonic() + float(spec["seconds"])
    tasks = [
        asyncio.create_task(SoakClient(sdk, recorder).loop(i * pace / clients, pace, deadline))
        for i, sdk in enumerate(pool)
    ]
    # the last iterations finish after the deadline; a server that hangs does not hold us forever
    done, pending = await asyncio.wait(
        tasks, timeout=float(spec["seconds"]) + spec.get("drain", 120)
    )
    for task in pending:
        task.cancel()
        recorder.error("drain", TimeoutError("an iteration did not finish within the drain time"))
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(sdk.aclose() for sdk in pool))
    recorder.close()
    iterations = sum(t.result() for t in done if not t.exception())
    return {
        "iterations": iterations,
        "counts": recorder.counts,
        "first_error": recorder.first_error,
    }


if __name__ == "__main__":
    child_main(run)
