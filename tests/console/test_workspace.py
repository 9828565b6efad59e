"""With a `sandbox` section, the console lists a thread's workspace files (GET
/threads/{id}/workspace), opens a directory and downloads a file with the signed-in headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.console.conftest import GRAPHS, start
from tests.support.browser import open_console
from tests.support.sandbox import traversable_dir
from tests.support.server import KeelServer


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    config = {"graphs": {"shell": f"{GRAPHS / 'workspace.py'}:graph"}, "sandbox": {}}
    with traversable_dir("keel-console-") as root:
        workdir = tmp_path_factory.mktemp("console-sandbox")
        srv = start(workdir, config, env={"KEEL_SANDBOX_ROOT": str(root)})
        try:
            yield srv
        finally:
            srv.stop()


async def test_workspace_files_are_listed_and_downloaded(
    sandboxed: KeelServer, tmp_path: Path
) -> None:
    async with get_client(url=sandboxed.url, api_key=None) as sdk:
        tid = (await sdk.threads.create(metadata={"graph_id": "shell"}))["thread_id"]
        cmd = "mkdir -p notes && printf 'otters' > notes/today.txt"
        out = await sdk.runs.wait(tid, "shell", input={"cmd": cmd})
        assert out["exit_code"] == 0, out  # type: ignore[call-overload]
    async with open_console(sandboxed.url) as console:
        await console.visit(f"threads/{tid}/workspace")
        await console.page.click("#workspace a >> text=notes")
        await console.page.wait_for_selector("#workspace a >> text=today.txt")
        async with console.page.expect_download() as waiting:
            await console.page.click("#workspace a >> text=today.txt")
        download = await waiting.value
        saved = tmp_path / "today.txt"
        await download.save_as(saved)
        assert saved.read_text() == "otters"
        assert console.errors == []
