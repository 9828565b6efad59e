"""Interrupts answered from the console's inbox, in a real Chromium: the approval example's
options (approve, edit) and a HumanInTheLoopMiddleware request (approve/edit/reject form); each
time the resumed run finishes with what the human chose."""

from __future__ import annotations

from typing import Any

from tests.support.browser import open_console
from tests.support.server import KeelServer


async def interrupted(client: Any, graph: str, payload: dict[str, Any], **kw: Any) -> str:
    """A thread whose first run stopped at an interrupt."""
    tid = (await client.threads.create(metadata={"graph_id": graph}))["thread_id"]
    await client.runs.wait(tid, graph, input=payload, **kw)
    assert (await client.threads.get(tid))["status"] == "interrupted"
    return str(tid)


async def finished(client: Any, tid: str) -> dict[str, Any]:
    """Join the thread's newest run (the one the console started); the thread's values."""
    runs = await client.runs.list(tid)
    await client.runs.join(tid, runs[0]["run_id"])
    thread: dict[str, Any] = await client.threads.get(tid)
    assert thread["status"] == "idle"
    return dict(thread["values"])


async def test_an_approval_is_approved_from_the_inbox(server: KeelServer, client: Any) -> None:
    async with open_console(server.url) as console:
        await console.visit("inbox")
        await console.page.wait_for_selector("#inbox > *")
        # A thread that stops for a human while the inbox is open shows on "Refresh".
        tid = await interrupted(client, "approval", {"request": "the report"})
        await console.page.click("#inbox-refresh")
        card = console.page.locator(
            "section", has=console.page.locator(f"a[href='#/threads/{tid}']")
        )
        await card.locator("button.option-approve").click()
        # The inbox re-reads the waiting threads once the resume run was created.
        await console.page.wait_for_selector(f"a[href='#/threads/{tid}']", state="detached")
        values = await finished(client, tid)
        assert values["decision"] == "approved"
        assert values["result"] == "done: send e-mail about the report"
        assert console.errors == []


async def test_an_approval_is_edited_from_the_thread_view(server: KeelServer, client: Any) -> None:
    tid = await interrupted(client, "approval", {"request": "lunch"})
    async with open_console(server.url) as console:
        await console.visit(f"threads/{tid}")
        await console.page.fill("#thread-interrupts input[name=action]", "call the caterer")
        await console.page.click("#thread-interrupts button.option-edit")
        values = await finished(client, tid)
        assert (values["decision"], values["result"]) == ("edited", "done: call the caterer")
        assert console.errors == []


async def test_a_hitl_request_is_edited_then_approved(server: KeelServer, client: Any) -> None:
    message = {"role": "user", "content": "weather mail"}
    tid = await interrupted(client, "hitl", {"messages": [message]})
    async with open_console(server.url) as console:
        await console.visit("inbox")
        card = console.page.locator(
            "section", has=console.page.locator(f"a[href='#/threads/{tid}']")
        )
        form = card.locator(".hitl-action", has_text="send_email")
        await form.locator("select[name=decision]").select_option("edit")
        await form.locator("textarea[name=args]").fill('{"to": "alice", "body": "edited"}')
        await card.locator("button.submit-decisions").click()
        values = await finished(client, tid)
        # The tool ran with the edited arguments (the agent's last word quotes its result).
        assert values["messages"][-1]["content"].endswith("sent to alice: edited -- Keel")
        assert console.errors == []


async def test_a_bad_json_resume_is_refused_in_the_page(server: KeelServer, client: Any) -> None:
    tid = await interrupted(client, "approval", {"request": "x"})
    async with open_console(server.url) as console:
        await console.visit(f"threads/{tid}")
        await console.page.click("#thread-interrupts details.json-resume summary")
        await console.page.fill("#thread-interrupts textarea[name=resume]", "{not json")
        await console.page.click("#thread-interrupts details.json-resume button")
        await console.page.wait_for_selector("#thread-interrupts >> text=invalid JSON")
        assert len(await client.runs.list(tid)) == 1  # nothing was sent
        await console.page.fill("#thread-interrupts textarea[name=resume]", '{"type": "reject"}')
        await console.page.click("#thread-interrupts details.json-resume button")
        values = await finished(client, tid)
        assert values["result"] == "nothing done"
        assert console.errors == []
