"""What the single-server benches share (`python -m bench lanes|mcp|a2a`): one `keel serve` on a
fresh SQLite file for the time of a measurement, and the results written as Markdown and JSON."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.contenders import KeelOnDatabase

ROOT = Path(__file__).resolve().parent
PIPELINE = ROOT.parent / "examples" / "agents" / "pipeline.py"

Measure = Callable[[str], Coroutine[Any, Any, dict[str, Any]]]


class KeelPipeline(KeelOnDatabase):
    """`keel serve` with only the 3-node example graph, `pipeline`."""

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "keel.json"
        self.config.write_text(json.dumps({"graphs": {"pipeline": f"{PIPELINE}:graph"}}))


def measure_on_sqlite(
    kind: type[KeelOnDatabase], workdir: Path, name: str, measure: Measure
) -> dict[str, Any]:
    """`measure(url)` against a started `kind` server on a new SQLite file under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"{name}-{int(time.time())}.db"
    server = kind(workdir, f"sqlite:///{db}")
    server.prepare()
    server.start()
    try:
        return asyncio.run(measure(server.url))
    finally:
        server.stop()


def write_results(out: Path, text: str, result: dict[str, Any]) -> None:
    """The report at `out` (Markdown), the figures beside it (`.json`), the report printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
