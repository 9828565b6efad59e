"""Screenshots of each console view for docs/console/*.png (referenced from docs/operations.md).

    python -m bench.console_shots [--out docs/console]

Starts a `keel serve` on a fresh SQLite database with the console tests' graphs (tests/console)
and a sandbox, makes a little of everything through the SDK (a finished agent chat, threads
waiting for a human, a failed run, a run held mid-way, store items, an assistant with two
versions, crons, workspace files), and photographs each view in the system's Chromium."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

from tests.console.conftest import CONFIG, GRAPHS, start
from tests.support.browser import Console, open_console
from tests.support.gate import Gate
from tests.support.sandbox import traversable_dir

ROOT = Path(__file__).resolve().parent.parent
SHOTS_CONFIG: dict[str, Any] = {
    "graphs": {
        **CONFIG["graphs"],
        "failing": f"{GRAPHS / 'failing.py'}:graph",
        "shell": f"{GRAPHS / 'workspace.py'}:graph",
    },
    "sandbox": {},
}
CHAT = {"messages": [{"role": "user", "content": "Mail Bob the weather in Paris"}]}


async def seed(sdk: Any, gate: Gate) -> dict[str, str]:
    """Data for every view; the ids the screenshots open."""
    ids: dict[str, str] = {}
    done = (await sdk.threads.create(metadata={"graph_id": "hitl"}))["thread_id"]
    await sdk.runs.wait(done, "hitl", input=CHAT)
    await sdk.runs.wait(done, "hitl", command={"resume": {"decisions": [{"type": "approve"}]}})
    ids["chat"] = done
    for graph, payload in (("hitl", CHAT), ("approval", {"request": "the Q3 report"})):
        tid = (await sdk.threads.create(metadata={"graph_id": graph}))["thread_id"]
        await sdk.runs.wait(tid, graph, input=payload)
    bad = (await sdk.threads.create(metadata={"graph_id": "failing"}))["thread_id"]
    await sdk.runs.wait(bad, "failing", input={"value": "x"}, raise_error=False)
    live = (await sdk.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    await sdk.runs.create(
        live,
        "slow",
        input={"delay": 0, "tag": "live"},
        config=gate.config,
        stream_mode=["values", "custom"],
        stream_resumable=True,
    )
    ids["live"] = live
    for key, text in (
        ("otters", "otters hold hands while they sleep"),
        ("tax", "quarterly tax forms are due in April"),
        ("seals", "seals sleep in the water, floating upright"),
    ):
        await sdk.store.put_item(["user-1", "memories"], key, {"text": text})
    made = await sdk.assistants.create(
        "hitl", name="mailer", config={"configurable": {"signature": "-- Ops"}}
    )
    await sdk.assistants.update(
        made["assistant_id"],
        config={"configurable": {"signature": "-- Ops team"}},
        metadata={"owner": "ops"},
    )
    ids["assistant"] = made["assistant_id"]
    await sdk.crons.create("slow", schedule="0 7 * * 1-5", input={"delay": 0})
    await sdk.crons.create_for_thread(done, "hitl", schedule="*/30 * * * *", input=CHAT)
    shell = (await sdk.threads.create(metadata={"graph_id": "shell"}))["thread_id"]
    cmd = "mkdir -p notes src && echo otters > notes/today.md && echo 'print(1)' > src/main.py"
    await sdk.runs.wait(shell, "shell", input={"cmd": cmd})
    ids["shell"] = shell
    return ids


async def shoot(console: Console, out: Path, ids: dict[str, str]) -> list[Path]:
    page = console.page
    steps: list[tuple[str, str, str]] = [
        ("overview", "overview", "#workers tr.lease"),
        ("threads", "threads", "#thread-results table"),
        ("thread", f"threads/{ids['chat']}", "#chat .msg"),
        ("thread-live", f"threads/{ids['live']}", "#live-events li:nth-child(3)"),
        ("inbox", "inbox", "#inbox .interrupt"),
        ("store", "store", "#items table"),
        ("assistants", "assistants", "table"),
        ("crons", "crons", "#crons table"),
        ("workspace", f"threads/{ids['shell']}/workspace", "#workspace table"),
    ]
    saved = []
    for name, route, ready in steps:
        await page.goto(f"{console.url}/console/#/{route}")
        await page.wait_for_selector(ready)
        if name == "store":
            await page.fill("input[name=query]", "animals sleeping")
            await page.click("form.filters button")
            await page.wait_for_selector("#items td.score")
        if name == "assistants":
            await page.click(f"a >> text={ids['assistant'][-8:]}")
            await page.wait_for_selector("#diff .add")
        path = out / f"{name}.png"
        await page.screenshot(path=str(path), full_page=name != "thread-live")
        saved.append(path)
    return saved


async def run(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, traversable_dir("keel-shots-") as root:
        server = start(Path(tmp), SHOTS_CONFIG, env={"KEEL_SANDBOX_ROOT": str(root)})
        gate = Gate(Path(tmp) / "gate")
        try:
            async with get_client(url=server.url, api_key=None) as sdk:
                ids = await seed(sdk, gate)
                async with open_console(server.url, height=800) as console:
                    for path in await shoot(console, out, ids):
                        print(path)
                    if console.errors:
                        raise SystemExit(f"console errors: {console.errors}")
        finally:
            gate.open()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(out))


if __name__ == "__main__":
    main()
