"""`POST /threads/{tid}/runs/{rid}/cancel` answers what the reference answers (issue 10, item 6):
with `wait=1` (or `true`), a 200 JSON body once the run is over, holding only what the run
published after the cancel, which for a cancelled run is nothing: `{}`; without, a bare 202; a
run that is not pending or running, 404 either way. Raw HTTP and the SDK, against both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from langgraph_sdk.errors import NotFoundError
from langgraph_sdk.schema import RunCreateMetadata

from tests.e2e.helpers import Client, SyncClient, poll

SLOW = "slow"


async def _run(http: httpx.AsyncClient, tid: str, delay: float, tag: str = "a") -> str:
    res = await http.post(
        f"/threads/{tid}/runs", json={"assistant_id": SLOW, "input": {"delay": delay, "tag": tag}}
    )
    assert res.status_code == 200, res.text
    return str(res.json()["run_id"])


async def _thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


async def _status(http: httpx.AsyncClient, tid: str, run_id: str) -> str:
    res = await http.get(f"/threads/{tid}/runs/{run_id}")
    return str(res.json()["status"]) if res.status_code == 200 else f"http {res.status_code}"


async def _running(http: httpx.AsyncClient, tid: str, delay: float, tag: str = "a") -> str:
    run_id = await _run(http, tid, delay, tag)
    await poll(lambda: _status(http, tid, run_id), lambda s: s == "running")
    return run_id


@contextlib.asynccontextmanager
async def _streaming(http: httpx.AsyncClient, tid: str, delay: float) -> AsyncIterator[str]:
    """A run whose first `values` event (its input) has gone out; its stream stays open."""
    body = {"assistant_id": SLOW, "input": {"delay": delay}}
    async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as res:
        lines = res.aiter_lines()
        async for line in lines:
            if line.startswith("event: values"):
                break
        yield res.headers["content-location"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(("wait", "action"), [("1", "interrupt"), ("true", "rollback")])
async def test_cancel_wait_on_a_running_run_answers_empty_json_once_it_ended(
    http: httpx.AsyncClient, wait: str, action: str
) -> None:
    """Only what the run publishes after the cancel counts: a cancelled run publishes nothing
    more (its input's `values` event went out before), so the answer is {}."""
    tid = await _thread(http)
    async with _streaming(http, tid, 30) as run_id:
        res = await http.post(
            f"/threads/{tid}/runs/{run_id}/cancel", params={"wait": wait, "action": action}
        )
    assert res.status_code == 200 and res.json() == {}
    assert res.headers["content-type"].startswith("application/json")
    assert res.headers["location"] == f"/threads/{tid}/runs/{run_id}/join"
    assert res.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"
    # Answered once the run was over.
    want = "interrupted" if action == "interrupt" else "http 404"
    assert await _status(http, tid, run_id) == want


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancel_wait_on_a_pending_run_interrupts_it(
    http: httpx.AsyncClient, action: str
) -> None:
    """The waiting request listens to the pending run: the reference then marks it interrupted
    rather than deleting it, even for a rollback."""
    tid = await _thread(http)
    first = await _running(http, tid, 30, "first")
    pending = await _run(http, tid, 0.01, "second")
    assert await _status(http, tid, pending) == "pending"
    res = await http.post(
        f"/threads/{tid}/runs/{pending}/cancel", params={"wait": "1", "action": action}
    )
    assert res.status_code == 200 and res.json() == {}
    assert await _status(http, tid, pending) == "interrupted"
    res = await http.post(f"/threads/{tid}/runs/{first}/cancel", params={"wait": "1"})
    assert res.status_code == 200


async def test_cancel_without_wait_is_a_bare_202(http: httpx.AsyncClient) -> None:
    tid = await _thread(http)
    run_id = await _running(http, tid, 30)
    res = await http.post(f"/threads/{tid}/runs/{run_id}/cancel", params={"wait": "0"})
    assert res.status_code == 202 and res.content == b""
    assert "location" not in res.headers
    await poll(lambda: _status(http, tid, run_id), lambda s: s == "interrupted")


@pytest.mark.parametrize("params", [{}, {"wait": "1"}, {"wait": "true", "action": "rollback"}])
async def test_cancel_of_a_finished_run_is_404(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    tid = await _thread(http)
    run_id = await _run(http, tid, 0.01)
    await poll(lambda: _status(http, tid, run_id), lambda s: s == "success")
    res = await http.post(f"/threads/{tid}/runs/{run_id}/cancel", params=params)
    assert res.status_code == 404
    assert res.json()["detail"].startswith("No matching runs to cancel")


async def _sdk_running(client: Client, tid: str) -> str:
    """A run whose input's `values` event went out (so nothing more comes before a cancel)."""
    created: list[RunCreateMetadata] = []
    stream = client.runs.stream(tid, SLOW, input={"delay": 30}, on_run_created=created.append)
    async for part in stream:
        if part.event == "values":
            break
    await stream.aclose()  # disconnecting leaves the run running (on_disconnect=continue)
    return created[0]["run_id"]


async def test_sdk_cancel_with_wait_returns_once_the_run_is_over(client: Client) -> None:
    tid = (await client.threads.create())["thread_id"]
    run_id = await _sdk_running(client, tid)
    assert await client.runs.cancel(tid, run_id, wait=True) == {}
    assert (await client.runs.get(tid, run_id))["status"] == "interrupted"

    rolled = await _sdk_running(client, tid)
    assert await client.runs.cancel(tid, rolled, wait=True, action="rollback") == {}
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, rolled)
    with pytest.raises(httpx.HTTPStatusError) as caught:  # over: 404 (httpx's, with wait)
        await client.runs.cancel(tid, run_id, wait=True)
    assert caught.value.response.status_code == 404


def test_sync_sdk_cancel_with_wait(sync_client: SyncClient) -> None:
    tid = sync_client.threads.create()["thread_id"]
    created: list[RunCreateMetadata] = []
    stream = sync_client.runs.stream(tid, SLOW, input={"delay": 30}, on_run_created=created.append)
    for part in stream:
        if part.event == "values":
            break
    stream.close()
    run_id = created[0]["run_id"]
    assert sync_client.runs.cancel(tid, run_id, wait=True) == {}
    assert sync_client.runs.get(tid, run_id)["status"] == "interrupted"
