"""keel.process: a runtime started by Keel's own command freezes its startup objects for the
garbage collector; one embedded elsewhere (`own_process` unset: the tests' apps, a program that
imports Keel) leaves the collector alone. Each case is a fresh Python process: a freeze is for
the life of the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GRAPHS_CONFIG

SCRIPT = """
import asyncio, gc, sys
from pathlib import Path
from keel.runtime import Runtime
from keel.settings import load_settings

async def main() -> None:
    settings = load_settings(
        Path(sys.argv[1]), database="sqlite:///" + sys.argv[2], own_process=sys.argv[3] == "own"
    )
    runtime = Runtime(settings)
    before = gc.get_freeze_count()
    await runtime.start()
    print(before, gc.get_freeze_count())
    await runtime.stop()

asyncio.run(main())
"""


@pytest.mark.parametrize(("owner", "frozen"), [("own", True), ("embedded", False)])
def test_only_keels_own_process_freezes_its_startup_objects(
    tmp_path: Path, owner: str, frozen: bool
) -> None:
    db = tmp_path / "k.db"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(GRAPHS_CONFIG), str(db), owner],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(n) for n in done.stdout.split())
    assert before == 0
    assert (after > 10_000) is frozen, after  # the libraries' objects, when frozen
