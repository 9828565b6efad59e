"""`python -m bench sandbox`: cold start of a sandboxed command, command start -> first byte of
stdout, for `python3 -c 'print(1)'` under keel.sandbox's bubblewrap argv, seccomp filter and
rlimits (`bubblewrap._spawn`, what every command goes through), against
the same command run without a sandbox. Writes bench/results/sandbox.md and .json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from keel.sandbox import bubblewrap
from keel.sandbox.workspaces import ensure
from keel.settings.sandbox import SandboxLimits

# The interpreter the sandbox's PATH finds, named absolutely so both sides run the same binary.
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/python3"
COMMAND = [PYTHON, "-c", "print(1)"]
RESULTS = Path(__file__).parent / "results" / "sandbox.md"


async def first_byte_ms(workspace: Path | None) -> float:
    """COMMAND plain (`workspace` None) or sandboxed over `workspace`, seccomp filter included."""
    start = time.perf_counter()
    if workspace is None:
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
    else:
        proc = await bubblewrap._spawn(workspace, COMMAND, SandboxLimits())
    assert proc.stdout is not None
    await proc.stdout.read(1)
    elapsed = (time.perf_counter() - start) * 1000
    await proc.communicate()
    return elapsed


async def measure(runs: int, workspace: Path) -> dict[str, float]:
    plain, boxed = [], []
    for _ in range(runs):  # interleaved, so load on the machine hits both alike
        plain.append(await first_byte_ms(None))
        boxed.append(await first_byte_ms(workspace))
    return {
        "runs": runs,
        "unsandboxed_p50_ms": statistics.median(plain),
        "sandboxed_p50_ms": statistics.median(boxed),
    }


def report(result: dict[str, float]) -> str:
    return (
        "# Sandbox cold start\n\n"
        f"Command start to the first byte of stdout for `{PYTHON} -c 'print(1)'`, "
        f"p50 of {int(result['runs'])} runs each, interleaved (`python -m bench sandbox`).\n\n"
        "| | p50 (ms) |\n|---|---|\n"
        f"| without a sandbox | {result['unsandboxed_p50_ms']:.1f} |\n"
        f"| keel.sandbox (bubblewrap, seccomp, rlimits) | {result['sandboxed_p50_ms']:.1f} |\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sandbox")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="keel-bench-sandbox-"))
    os.chmod(base, 0o711)
    result = asyncio.run(measure(args.runs, ensure(base, "bench")))
    args.out.write_text(report(result))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    return 0
