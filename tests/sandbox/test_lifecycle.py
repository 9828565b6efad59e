"""Workspace removal without a database (keel.sandbox.lifecycle): the path is free as soon as
`discard` returns, a second removal (another process on the same root) is a no-op, and a tree a
command made read-only is still deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from keel.sandbox import for_thread, lifecycle
from keel.settings.sandbox import SandboxSettings
from tests.support.sandbox import traversable_dir


@pytest.fixture
def settings() -> Iterator[SandboxSettings]:
    with traversable_dir("keel-discard-") as base:
        yield SandboxSettings(root=base / "workspaces")


async def test_discard_frees_the_path_once_and_deletes_a_read_only_tree(
    settings: SandboxSettings,
) -> None:
    sb = for_thread("thread-x", settings)
    made = await sb.run("mkdir -p a/b && echo x > a/b/f && chmod 500 a/b a")
    assert made.exit_code == 0, made.stderr
    # Off the event loop (a thread), discard deletes at once instead of in the background.
    assert await asyncio.to_thread(lifecycle.discard, settings.root, "thread-x") is True
    assert not sb.workspace.exists()
    assert list((settings.root / lifecycle.TRASH).iterdir()) == []
    assert lifecycle.discard(settings.root, "thread-x") is False  # already taken
    assert lifecycle.discard(settings.root, "never-had-one") is False
