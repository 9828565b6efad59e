"""Every console view, in a real Chromium, renders the server's data without a console error;
a run started through the SDK is watched live in the thread view until it finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import poll, run_status
from tests.support.browser import open_console
from tests.support.gate import Gate
from tests.support.server import KeelServer

# Each route and an element it shows only once its data arrived.
VIEWS = {
    "overview": "#overview-runs .tile[data-metric=pending]",
    "threads": "#thread-results table",
    "inbox": "#inbox",
    "store": "#items table",
    "assistants": "table >> text=slow",
    "crons": "#crons table",
}


async def seed(client: Any) -> str:
    """A finished run, a store item, a cron and a second assistant version: data for each view."""
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    await client.runs.wait(tid, "slow", input={"delay": 0, "tag": "seeded"})
    await client.store.put_item(["console", "notes"], "otters", {"text": "otters hold hands"})
    await client.crons.create_for_thread(tid, "slow", schedule="0 3 * * *", input={"delay": 0})
    made = await client.assistants.create(
        "slow", config={"configurable": {"tag": "a"}}, name="mine"
    )
    await client.assistants.update(made["assistant_id"], config={"configurable": {"tag": "b"}})
    return str(tid)


async def test_every_view_loads_without_console_errors(server: KeelServer, client: Any) -> None:
    tid = await seed(client)
    async with open_console(server.url) as console:
        for route, ready in VIEWS.items():
            await console.visit(route)
            await console.page.wait_for_selector(ready)
        await console.visit(f"threads/{tid}")
        await console.page.wait_for_selector("#run-list tr[data-status=success]")
        await console.page.wait_for_selector("#history table")
        await console.visit(f"threads/{tid}/workspace")
        await console.page.wait_for_selector("#workspace >> text=No sandbox")
        assert console.errors == []


async def test_the_thread_list_shows_the_new_thread_first(server: KeelServer, client: Any) -> None:
    await client.threads.create(metadata={"graph_id": "slow", "mark": "older"})
    newest = await client.threads.create(metadata={"graph_id": "slow", "mark": "newer"})
    async with open_console(server.url) as console:
        await console.visit("threads")
        first = console.page.locator("#thread-results tbody tr").first.locator("a")
        assert await first.get_attribute("href") == f"#/threads/{newest['thread_id']}"
        assert console.errors == []


async def test_assistant_versions_are_diffed(server: KeelServer, client: Any) -> None:
    made = await client.assistants.create("slow", config={"configurable": {"k": "v1"}}, name="d")
    await client.assistants.update(made["assistant_id"], config={"configurable": {"k": "v2"}})
    async with open_console(server.url) as console:
        await console.visit("assistants")
        await console.page.click(f"a[href='#/assistants'] >> text={made['assistant_id'][-8:]}")
        await console.page.wait_for_selector("#diff")
        # Only the changed value differs (it may appear in both config and context).
        removed = await console.page.locator("#diff .del").all_inner_texts()
        added = await console.page.locator("#diff .add").all_inner_texts()
        assert removed and all(line.endswith('"k": "v1"') for line in removed)
        assert [line.replace("v2", "v1")[1:] for line in added] == [r[1:] for r in removed]
        # Each removed line comes right before the line that replaces it.
        lines = await console.page.locator("#diff div").all_inner_texts()
        first = lines.index(removed[0])
        assert lines[first + 1] == added[0]
        assert console.errors == []


async def test_a_cron_is_disabled_and_enabled_again(server: KeelServer, client: Any) -> None:
    cron = await client.crons.create("slow", schedule="0 4 * * *", input={"delay": 0})
    row = f"#crons tr[data-cron='{cron['cron_id']}']"
    async with open_console(server.url) as console:
        await console.visit("crons")
        await console.page.click(f"{row} button.toggle")
        await console.page.wait_for_selector(f"{row} button.toggle >> text=Enable")
        assert (await client.crons.search(enabled=False))[0]["cron_id"] == cron["cron_id"]
        await console.page.click(f"{row} button.toggle")
        await console.page.wait_for_selector(f"{row} button.toggle >> text=Disable")
        assert console.errors == []


async def test_a_running_run_is_watched_live_until_it_finishes(
    server: KeelServer, client: Any, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    run = await client.runs.create(
        tid,
        "slow",
        input={"delay": 0, "tag": "live"},
        config=gate.config,
        stream_mode=["values", "custom"],
        stream_resumable=True,
    )
    await run_status(client, tid, run["run_id"], "running")
    async with open_console(server.url) as console:
        await console.page.goto(f"{server.url}/console/#/threads/{tid}")
        # The run is held at step1 and emits "held" custom events: the live view shows them.
        await console.page.wait_for_selector("#live-events li[data-event=custom] >> text=step1")
        assert await console.page.inner_text("#live-state") == "streaming"
        gate.open()
        await console.page.wait_for_selector("#live-state >> text=ended")
        await console.page.wait_for_selector(
            f"#run-list tr[data-run='{run['run_id']}'][data-status=success]"
        )
        values = console.page.locator("#live-events li[data-event=values]").last
        assert "step3:live" in await values.inner_text()
        assert console.errors == []


async def test_the_workers_panel_and_the_runs_attempts_show_a_running_run(
    server: KeelServer, client: Any, tmp_path: Path
) -> None:
    """The overview lists the server's in-process worker, alive, with the lease of a run held at
    a gate; the thread view shows that run's attempt and worker, then its attempt once done."""
    gate = Gate(tmp_path / "gate")
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0}, config=gate.config)
    await run_status(client, tid, run["run_id"], "running")
    async with httpx.AsyncClient(base_url=server.url) as http:
        [worker] = (await http.get("/keel/workers")).json()
    async with open_console(server.url) as console:
        await console.visit("overview")
        head = f"#workers tr[data-worker='{worker['worker_id']}'][data-alive=true]"
        await console.page.wait_for_selector(head)
        lease = console.page.locator(f"#workers tr[data-lease='{run['run_id']}']")
        await expect(lease.locator(".attempt")).to_have_text("attempt 1")
        await expect(lease.locator(f"a[href='#/threads/{tid}']")).to_have_count(1)
        await console.visit(f"threads/{tid}")
        row = console.page.locator(f"#run-list tr[data-run='{run['run_id']}']")
        await expect(row.locator("td.attempts")).to_have_text("1")
        await expect(row.locator("td.worker")).to_have_text(worker["worker_id"])
        gate.open()
        done = console.page.locator(
            f"#run-list tr[data-run='{run['run_id']}'][data-status=success]"
        )
        await expect(done.locator("td.attempts")).to_have_text("1")
        await expect(done.locator("td.worker")).to_have_text("")
        assert console.errors == []


async def test_a_replay_from_a_checkpoint_makes_a_branch(server: KeelServer, client: Any) -> None:
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    await client.runs.wait(tid, "slow", input={"delay": 0, "tag": "t"})
    history = await client.threads.get_history(tid)
    after_step1 = next(s for s in history if s["next"] == ["step2"])
    cid = after_step1["checkpoint"]["checkpoint_id"]
    async with open_console(server.url) as console:
        await console.visit(f"threads/{tid}")
        row = console.page.locator("#history tr", has=console.page.locator(f"code[title='{cid}']"))
        await row.locator("button.fork").click()
        await row.locator("button >> text=Replay from here").click()
        # The replay's run reran step2 and step3 from that checkpoint: a second branch.
        await console.page.wait_for_selector(f"#history code[title='{cid}'] + .badge")
        runs = await client.runs.list(tid)
        assert len(runs) == 2
        await client.runs.join(tid, runs[0]["run_id"])
        # Every checkpoint the replay wrote is on a branch one level in, beside the first line.
        made = len(await client.threads.get_history(tid)) - len(history)
        assert made > 0
        await expect(console.page.locator("#history tr[data-depth='1']")).to_have_count(
            made, timeout=30_000
        )
        state = await client.threads.get_state(tid)
        assert state["values"]["log"] == ["step1:t", "step2:t", "step3:t"]
        assert (
            state["parent_checkpoint"]["checkpoint_id"] != history[0]["checkpoint"]["checkpoint_id"]
        )
        assert console.errors == []


async def test_a_fork_with_values_updates_the_state_at_a_checkpoint(
    server: KeelServer, client: Any
) -> None:
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    await client.runs.wait(tid, "slow", input={"delay": 0, "tag": "t"})
    history = await client.threads.get_history(tid)
    cid = next(s for s in history if s["next"] == ["step2"])["checkpoint"]["checkpoint_id"]
    async with open_console(server.url) as console:
        await console.visit(f"threads/{tid}")
        row = console.page.locator("#history tr", has=console.page.locator(f"code[title='{cid}']"))
        await row.locator("button.fork").click()
        await row.locator("textarea[name=values]").fill('{"tag": "forked"}')
        await row.locator("input[name=as_node]").fill("step1")
        await row.locator("button >> text=Fork with these values").click()
        await console.page.wait_for_selector(f"#history code[title='{cid}'] + .badge")
        state = await client.threads.get_state(tid)
        assert state["values"]["tag"] == "forked"
        assert state["parent_checkpoint"]["checkpoint_id"] == cid
        assert state["next"] == ["step2"]
        assert console.errors == []


async def subscribers(url: str) -> float:
    """keel_sse_subscribers on the server: the SSE streams open right now."""
    async with httpx.AsyncClient(base_url=url) as http:
        families = text_string_to_metric_families((await http.get("/metrics")).text)
    return sum(s.value for f in families for s in f.samples if s.name == "keel_sse_subscribers")


async def test_a_run_started_elsewhere_appears_through_the_thread_stream(
    server: KeelServer, client: Any, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")
    tid = (await client.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    # Earlier tests' streams are closed (their browsers are gone).
    await poll(lambda: subscribers(server.url), lambda n: n == 0)
    async with open_console(server.url) as console:
        await console.visit(f"threads/{tid}")
        await console.page.wait_for_selector("#run-list >> text=No runs.")
        # The thread view's SSE stream is open (no re-reading on a timer while it is).
        await poll(lambda: subscribers(server.url), lambda n: n == 1)
        run = await client.runs.create(
            tid,
            "slow",
            input={"delay": 0, "tag": "x"},
            config=gate.config,
            stream_mode=["values", "custom"],
        )
        await console.page.wait_for_selector("#live-events li[data-event=custom]")
        gate.open()
        row = f"#run-list tr[data-run='{run['run_id']}'][data-status=success]"
        await console.page.wait_for_selector(row)
        await console.page.wait_for_selector("#history >> text=step3")
        assert console.errors == []
