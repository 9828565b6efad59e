"""Per-thread uids (Keel as root): one thread's fork bomb does not stop another thread's command
from forking; a workspace made for another uid is handed over to its thread's."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.sandbox import Result, Sandbox, for_thread
from keel.sandbox.uids import NOBODY, UID_BASE, UID_COUNT, thread_uid
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from tests.support.sandbox import traversable_dir

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="per-thread uids need Keel as root")
LIMITS = SandboxLimits(wall_seconds=30.0, processes=8)
# Forks until the process limit refuses, says so, then holds its processes until `release`.
HOLD = """
import os, signal, time
held = 0
try:
    while held < 64:
        if os.fork() == 0:
            signal.pause()
        held += 1
except OSError as exc:
    print("full after", held, exc.strerror, flush=True)
open("full", "w").close()
while not os.path.exists("release"):
    time.sleep(0.05)
"""


@pytest.fixture
def settings() -> Iterator[SandboxSettings]:
    with traversable_dir("keel-uids-") as base:
        yield SandboxSettings(root=base / "ws", limits=LIMITS)


def test_thread_uids_are_stable_and_in_their_range() -> None:
    uid = thread_uid("thread-a")
    assert uid == thread_uid("thread-a") != thread_uid("thread-b")
    assert UID_BASE <= uid < UID_BASE + UID_COUNT


async def _until_exists(path: Path, running: asyncio.Task[Result]) -> None:
    for _ in range(400):  # 20 s at most
        if running.done() or await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.05)


def test_one_threads_fork_bomb_does_not_stop_another_thread(settings: SandboxSettings) -> None:
    # Thread ids of this test only: a sandbox's init lingers as a zombie of the host's init for a
    # moment after its command (docs/sandbox.md), counted in its thread's processes meanwhile.
    a, b = for_thread("uids-bomb-a", settings), for_thread("uids-bomb-b", settings)
    a.write("hold.py", HOLD)

    async def scenario() -> tuple[Result, Result]:
        holding = asyncio.create_task(a.run("python3 hold.py"))
        await _until_exists(a.workspace / "full", holding)
        assert not holding.done(), holding.result()  # A holds every process it may have
        try:
            forked = await b.run("sleep 0 & sleep 0 & wait; echo forked")
        finally:
            (a.workspace / "release").touch()
        return await holding, forked

    held, forked = asyncio.run(scenario())
    assert "full after" in held.stdout and held.exit_code == 0, held
    assert forked.exit_code == 0 and forked.stdout == "forked\n", forked


def test_a_workspace_owned_by_another_uid_is_handed_over(settings: SandboxSettings) -> None:
    old = for_thread("uids-handover", settings)
    old.write("kept.txt", "data\n")
    os.makedirs(old.workspace / "sub")
    for path in (old.workspace, old.workspace / "kept.txt", old.workspace / "sub"):
        os.chown(path, NOBODY, NOBODY)  # as made before per-thread uids
    sb: Sandbox = for_thread("uids-handover", settings)
    uid = thread_uid("uids-handover")
    for path in (sb.workspace, sb.workspace / "kept.txt", sb.workspace / "sub"):
        assert os.lstat(path).st_uid == uid
    result = asyncio.run(sb.run("echo more >> kept.txt && touch sub/new && cat kept.txt"))
    assert result.exit_code == 0 and result.stdout == "data\nmore\n", result
