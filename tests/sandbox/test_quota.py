"""The workspace quota while a command runs (keel.sandbox.quota): a command that writes without
end is killed once the workspace is over `workspace_bytes`, and says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.sandbox import for_thread, workspaces
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from tests.support.sandbox import traversable_dir

QUOTA = 512 << 10
FILE_BYTES = 4 << 20  # RLIMIT_FSIZE: the one file written never grows past this
LIMITS = SandboxLimits(
    cpu_seconds=60,
    wall_seconds=100.0,  # the command never ends by itself: only the quota watcher ends it
    memory_bytes=256 << 20,
    # RLIMIT_NPROC counts every process of uid 65534 on the host (docs/sandbox.md, Gaps):
    # room for the escape suite's fork bomb or another engineer's sandboxes at the same time.
    processes=4096,
    open_files=64,
    output_bytes=4096,
    file_bytes=FILE_BYTES,
    workspace_bytes=QUOTA,
)
# Appends 64 KiB at a time, forever: once the file reaches FILE_BYTES each append fails
# (SIGXFSZ) and the loop goes on, so the workspace stays over the quota until the kill.
FILL = "while true; do head -c 65536 /dev/zero >> fill 2>/dev/null; done"


@pytest.fixture
def settings() -> Iterator[SandboxSettings]:
    with traversable_dir("keel-quota-") as base:
        yield SandboxSettings(root=base / "workspaces", limits=LIMITS)


async def test_a_command_writing_past_the_quota_is_killed(settings: SandboxSettings) -> None:
    sb = for_thread("quota-a", settings)
    result = await sb.run(FILL)
    assert result.quota_exceeded and not result.timed_out
    assert result.exit_code != 0
    assert f"went over its quota of {QUOTA} bytes" in result.stderr
    # The overshoot bound by construction: one file, capped by RLIMIT_FSIZE.
    assert QUOTA < workspaces.usage(sb.workspace) <= FILE_BYTES
    # Over the quota, the next command is refused before it starts; files stay readable.
    assert len(sb.read("fill")) == workspaces.usage(sb.workspace)


async def test_a_command_under_the_quota_is_not_touched(settings: SandboxSettings) -> None:
    sb = for_thread("quota-b", settings)
    result = await sb.run("head -c 1000 /dev/zero > small && echo done")
    assert (result.exit_code, result.stdout, result.quota_exceeded) == (0, "done\n", False)
    assert "quota" not in result.stderr
