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
from keel.sandbox.uids import thread_uid
from keel.sandbox.workspaces import ensure
from keel.settings.sandbox import SandboxLimits

# The interpreter the sandbox's PATH finds, named absolutely so both sides run the same binary.
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/python3"
COMMAND = [PYTHON, "-c", "print(1)"]
RESULTS = Path(__file__).parent / "results" / "sandbox.md"


async def _start(workspace: Path | None, filtered: bool) -> asyncio.subprocess.Process:
    """COMMAND plain (`workspace` None), or sandboxed over `workspace` as Keel runs it
    (`filtered`), or the same without the seccomp filter (to show what the filter costs)."""
    if workspace is None:
        return await asyncio.create_subprocess_exec(
            *COMMAND, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
    if filtered:
        return await bubblewrap._spawn(workspace, COMMAND, SandboxLimits())
    return await asyncio.create_subprocess_exec(
        *bubblewrap.bwrap_argv(bubblewrap.bwrap_path(), workspace, COMMAND),
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=bubblewrap._preexec(SandboxLimits(), thread_uid(workspace.name)),
        env={},
    )


async def first_byte_ms(workspace: Path | None, filtered: bool = True) -> float:
    start = time.perf_counter()
    proc = await _start(workspace, filtered)
    assert proc.stdout is not None
    await proc.stdout.read(1)
    elapsed = (time.perf_counter() - start) * 1000
    await proc.communicate()
    return elapsed


async def measure(runs: int, workspace: Path) -> dict[str, float]:
    plain, bare, boxed = [], [], []
    for _ in range(runs):  # interleaved, so load on the machine hits all alike
        plain.append(await first_byte_ms(None))
        bare.append(await first_byte_ms(workspace, filtered=False))
        boxed.append(await first_byte_ms(workspace))
    return {
        "runs": runs,
        "unsandboxed_p50_ms": statistics.median(plain),
        "sandboxed_without_seccomp_p50_ms": statistics.median(bare),
        "sandboxed_p50_ms": statistics.median(boxed),
    }


def report(result: dict[str, float]) -> str:
    return (
        "# Sandbox cold start\n\n"
        f"Command start to the first byte of stdout for `{PYTHON} -c 'print(1)'`, "
        f"p50 of {int(result['runs'])} runs each, interleaved (`python -m bench sandbox`).\n\n"
        "| | p50 (ms) |\n|---|---|\n"
        f"| without a sandbox | {result['unsandboxed_p50_ms']:.1f} |\n"
        "| bubblewrap and rlimits, no seccomp filter | "
        f"{result['sandboxed_without_seccomp_p50_ms']:.1f} |\n"
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
