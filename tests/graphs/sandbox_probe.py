"""A graph that runs one command in its thread's sandbox through `keel.sandbox.current()`:
it writes `probe.txt` in the workspace and returns the workspace's name and what the command
printed; given a `command`, it runs that instead and returns its outcome (tests/e2e/test_coder.py
registers it with a `sandbox` section)."""

from __future__ import annotations

from typing import TypedDict

from keel.sandbox import current


class State(TypedDict, total=False):
    text: str
    seen: str
    command: str
    outcome: dict[str, object]


async def probe(state: State) -> State:
    sb = current()
    if "command" in state:
        done = await sb.run(state["command"])
        outcome = {"exit_code": done.exit_code, "timed_out": done.timed_out,
                   "truncated": done.truncated, "stdout": done.stdout[-300:],
                   "stderr": done.stderr[-300:]}  # fmt: skip
        return {"outcome": outcome}
    result = await sb.run(["sh", "-c", 'printf "%s" "$1" > probe.txt; pwd; cat probe.txt', "sh",
                           state.get("text", "")])  # fmt: skip
    return {"seen": f"{sb.workspace.name} {result.stdout.strip()}".replace("\n", " ")}


def build() -> object:
    from langgraph.graph import START, StateGraph

    builder = StateGraph(State)
    builder.add_node("probe", probe)
    builder.add_edge(START, "probe")
    return builder.compile(name="sandbox_probe")


graph = build()
