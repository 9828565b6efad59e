"""Hold a run of the `slow` test graph (tests/graphs/slow.py) at a step until the test lets it go.

A race such as "cancel the run while it is still running" or "join the stream while the run is
live" is made to happen by construction instead of by a short sleep inside the graph: a run
created with `config=gate.config` does not finish step N until the test called
`gate.open("stepN")` (or `gate.open()` for every step). While a step is held the graph emits a
custom event `{"held": "stepN"}` every few milliseconds (when the run streams "custom"), so a
client that received one knows its stream is subscribed while the run is still held.

The gate is a directory; opening a step creates a file in it, which the graph (in any process on
this machine: Keel, a worker, the reference server) polls for.
"""

from __future__ import annotations

from pathlib import Path

from langgraph_sdk.schema import Config

STEPS = ("step1", "step2", "step3")
CONFIG_KEY = "keel_test_gate"


class Gate:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def config(self) -> Config:
        """The run `config` that makes a run of the slow graph wait for this gate."""
        return {"configurable": {CONFIG_KEY: str(self.path)}}

    def open(self, *steps: str) -> None:
        """Let these steps (default: all) finish, now and in any later run using this gate."""
        for step in steps or STEPS:
            if step not in STEPS:
                raise ValueError(f"unknown step {step!r}")
            (self.path / step).touch()
