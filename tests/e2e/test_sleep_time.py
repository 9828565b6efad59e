"""Sleep-time triggers and the client's lane option through the SDK, on both backends (Keel's own
config: `background` in keel.json; the reference has no such feature, so not run against it).

Every trigger's timing is made by construction: a thread is held busy by a gated run of the
`slow` graph, and what the trigger loop did is read from its state row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from keel.background.firing import companion_thread_id
from tests.conftest import database_for
from tests.e2e.helpers import Client, poll
from tests.support.faults import query
from tests.support.gate import Gate
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
EXAMPLES = ROOT / "examples" / "agents"
ECHO = f"{GRAPHS / 'config_echo.py'}:graph"
TRIGGERS: dict[str, Any] = {
    "reflect": {"graph": "reflect", "watch": ["chat_fake", "memory", "slow"], "on_idle": 0.5},
    "every2": {"graph": "reflect", "watch": ["echo_count"], "every_n_runs": 2, "input": "thread"},
    "daily1": {
        "graph": "reflect",
        "watch": ["echo_budget"],
        "on_idle": 0.2,
        "max_runs_per_thread_per_day": 1,
    },
    "wall": {"graph": "slow", "watch": ["echo_wall"], "every_n_runs": 1, "max_seconds": 0.3},
}
CONFIG = {
    "graphs": {
        "chat_fake": f"{GRAPHS / 'chat_fake.py'}:graph",
        "slow": f"{GRAPHS / 'slow.py'}:graph",
        "memory": f"{EXAMPLES / 'memory.py'}:graph",
        "reflect": f"{EXAMPLES / 'reflect.py'}:graph",
        "echo_count": ECHO,
        "echo_budget": ECHO,
        "echo_wall": ECHO,
    },
    "background": {"triggers": TRIGGERS},
}


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel's own config (sleep-time triggers)")
    workdir = tmp_path_factory.mktemp(f"sleep-{backend}")
    path = workdir / "keel.json"
    path.write_text(json.dumps(CONFIG))
    srv = KeelServer(path, workdir, database=database_for(backend, request, workdir))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def trigger_state(server: KeelServer, name: str, subject: str) -> tuple[Any, ...] | None:
    sql = (
        "SELECT due_at, ended_runs, day_runs FROM trigger_states WHERE trigger_name=? AND subject=?"
    )
    rows = query(server.database, sql, (name, subject))
    return rows[0] if rows else None


INTERACTIVE = {"keel_lane": "interactive"}


def lane(server: KeelServer, run_id: str) -> int:
    return int(query(server.database, "SELECT lane FROM runs WHERE run_id=?", (run_id,))[0][0])


def consumed(state: tuple[Any, ...]) -> bool:
    """The trigger's state exists and is not armed (fired, or waited out)."""
    return bool(state) and state[0] is None


async def background_runs(client: Client, name: str, thread_id: str) -> list[dict[str, Any]]:
    companion = companion_thread_id(name, thread_id)
    try:
        return list(await client.runs.list(companion))
    except Exception:  # no companion thread yet
        return []


async def settled_runs(client: Client, name: str, thread_id: str, count: int) -> list[Any]:
    """Wait until the trigger made `count` background runs for the thread, all finished."""
    return await poll(
        lambda: background_runs(client, name, thread_id),
        lambda runs: (
            len(runs) >= count and all(r["status"] not in ("pending", "running") for r in runs)
        ),
    )


async def test_on_idle_waits_out_activity_and_fires_once(
    client: Client, server: KeelServer, tmp_path: Path
) -> None:
    """The idle time passes while the thread is busy (a queued run held by a gate): nothing
    fires. Once the thread's last run has ended, the trigger fires exactly once."""
    first, second = Gate(tmp_path / "a"), Gate(tmp_path / "b")
    thread = (await client.threads.create())["thread_id"]
    await client.runs.create(thread, "slow", input={"delay": 0.01}, config=first.config)
    held = await client.runs.create(
        thread, "slow", input={"delay": 0.01}, config=second.config, multitask_strategy="enqueue"
    )
    first.open()  # the first run ends: the trigger is armed, the second run keeps the thread busy
    await poll(lambda: _state(server, "reflect", thread), consumed)
    assert await background_runs(client, "reflect", thread) == []
    second.open()
    await client.runs.join(thread, held["run_id"])
    runs = await settled_runs(client, "reflect", thread, 1)
    await poll(lambda: _state(server, "reflect", thread), consumed)
    runs = await background_runs(client, "reflect", thread)
    assert len(runs) == 1 and runs[0]["status"] == "success"
    meta = runs[0]["metadata"]
    assert meta["keel_trigger"] == "reflect" and meta["keel_source_thread_id"] == thread
    assert meta["keel_lane"] == "background"


async def _state(server: KeelServer, name: str, subject: str) -> tuple[Any, ...]:
    """(due_at, ended_runs, day_runs) of a trigger's state; () when it has none."""
    return trigger_state(server, name, subject) or ()


async def test_reflect_distils_an_idle_conversation_for_the_next_one(client: Client) -> None:
    """A conversation with a (scripted fake) chat model goes idle; the reflect example distils
    the user's facts into the store; a new conversation finds them by semantic search."""
    user = uuid.uuid4().hex
    config = {"configurable": {"user_id": user}}
    thread = (await client.threads.create())["thread_id"]
    said = "My cat is called Miso. I fly to Lisbon on Friday. What is the weather like?"
    await client.runs.wait(
        thread, "chat_fake", input={"messages": [{"role": "user", "content": said}]}, config=config
    )
    runs = await settled_runs(client, "reflect", thread, 1)
    assert runs[0]["status"] == "success"
    stored = await client.store.search_items(["memories", user], limit=10)
    texts = sorted(i["value"]["text"] for i in stored["items"])
    assert texts == ["I fly to Lisbon on Friday", "My cat is called Miso"]
    out = await client.runs.wait(
        None, "memory", input={"question": "what is my cat's name?"}, config=config
    )
    assert out["answers"][0] == "My cat is called Miso"
    companions = await client.threads.search(metadata={"keel_source_thread_id": thread})
    assert [t["thread_id"] for t in companions] == [companion_thread_id("reflect", thread)]


async def test_every_n_runs_fires_after_each_nth_run(client: Client, server: KeelServer) -> None:
    """Runs 2 and 4 each make one background run (the first has ended before run 3 starts:
    firings that come due while one is still due are coalesced, docs/sleep-time.md)."""
    thread = (await client.threads.create())["thread_id"]
    for _ in range(2):
        await client.runs.wait(thread, "echo_count", input={})
    await settled_runs(client, "every2", thread, 1)
    await client.runs.wait(thread, "echo_count", input={})
    assert (await _state(server, "every2", thread))[1:2] == (1,)
    await client.runs.wait(thread, "echo_count", input={})
    runs = await settled_runs(client, "every2", thread, 2)
    assert [r["status"] for r in runs] == ["success", "success"]
    state = await poll(lambda: _state(server, "every2", thread), consumed)
    assert state[1] == 0  # counting again from zero
    assert len(await background_runs(client, "every2", thread)) == 2


async def test_budget_per_day_skips_firings_over_it(client: Client, server: KeelServer) -> None:
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "echo_budget", input={})
    await settled_runs(client, "daily1", thread, 1)
    await client.runs.wait(thread, "echo_budget", input={})  # armed again, over the budget
    state = await poll(lambda: _state(server, "daily1", thread), consumed)
    assert state[2] == 1
    assert len(await background_runs(client, "daily1", thread)) == 1


async def test_max_seconds_ends_a_background_run_in_timeout(client: Client) -> None:
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "echo_wall", input={})
    runs = await settled_runs(client, "wall", thread, 1)
    assert runs[0]["status"] == "timeout"  # the slow graph takes 0.6 s; its budget is 0.3 s


async def test_client_asks_for_the_background_lane_in_metadata(
    client: Client, server: KeelServer
) -> None:
    thread = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as bad:
        await client.runs.create(thread, "echo_count", metadata={"keel_lane": "fast"})
    assert "keel_lane" in str(bad.value)
    other = str(uuid.uuid4())
    run = await client.runs.create(
        other, "echo_count", input={}, metadata={"keel_lane": "background"}, if_not_exists="create"
    )
    assert run["metadata"]["keel_lane"] == "background"
    assert "seen" in await client.runs.join(other, run["run_id"])
    # As in the reference, the request's metadata becomes the new thread's: its later runs
    # are in the background lane too, and their metadata says so.
    assert (await client.threads.get(other))["metadata"]["keel_lane"] == "background"
    later = await client.runs.create(other, "echo_count", input={})
    assert later["metadata"]["keel_lane"] == "background"
    assert lane(server, later["run_id"]) == 1
    asked = await client.runs.create(other, "echo_count", input={}, metadata=INTERACTIVE)
    assert lane(server, asked["run_id"]) == 0
    assert await client.runs.list(thread) == []  # the refused run left nothing
