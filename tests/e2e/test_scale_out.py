"""Scale-out on PostgreSQL: API-only processes and `keel worker` processes sharing one database.

Two API processes execute nothing (`--no-workers`); two worker processes execute every run. So
each test here crosses processes: streams, joins, cancellation and double-texting reach a run
through the database and LISTEN/NOTIFY, never through shared memory.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import StreamMode

from tests.conftest import GRAPHS_CONFIG
from tests.support.fleet import Fleet, start_fleet, stop_fleet
from tests.support.gate import Gate
from tests.support.postgres import PgCluster
from tests.support.server import KeelServer, serve_command

LEASE = "1.5"  # seconds: short, so a killed worker's run is taken over quickly


@pytest.fixture(scope="module")
def fleet(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # A 1 s shutdown grace: the SIGTERM test waits it out (its run takes a minute either way).
    env = {"KEEL_LEASE_SECONDS": LEASE, "KEEL_MODEL": "", "KEEL_SHUTDOWN_GRACE_SECONDS": "1"}
    f = start_fleet(pg_cluster.create_database(), tmp_path_factory.mktemp("fleet"), env)
    try:
        yield f
    finally:
        stop_fleet(f)


@pytest.fixture
async def sdk(fleet: Fleet) -> AsyncIterator[Fleet]:
    """The fleet, with one SDK client per API process."""
    fleet.clients = [get_client(url=api.url, api_key=None) for api in fleet.apis]
    try:
        yield fleet
    finally:
        for client in fleet.clients:
            await client.aclose()
        fleet.clients = None


async def _collect(parts: AsyncIterator[Any]) -> list[Any]:
    return [p async for p in parts]


@pytest.mark.usefixtures("sdk")
async def test_stream_on_an_api_process_follows_a_run_executed_by_a_worker(fleet: Fleet) -> None:
    a, b = fleet.client(0), fleet.client(1)
    thread = await a.threads.create()
    parts = await _collect(
        a.runs.stream(
            thread["thread_id"],
            "pipeline",
            input={"topic": "x"},
            stream_mode=["values", "custom"],
        )
    )
    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert [p.data["stage"] for p in parts if p.event == "custom"] == [
        "research",
        "draft",
        "review",
    ]
    assert parts[-1].event == "values" and parts[-1].data["summary"] == "3 steps done"
    ids = [int(p.id) for p in parts]
    assert ids == sorted(set(ids))
    worker_pids = {str(w.pid) for w in fleet.workers}
    assert fleet.run_row(run_id)["worker_id"] is None  # released when it finished
    # Rejoin on the other API process after the second event: the rest, exactly once.
    rest = await _collect(
        b.runs.join_stream(thread["thread_id"], run_id, last_event_id=parts[1].id)
    )
    assert [(p.id, p.event, p.data) for p in rest] == [(p.id, p.event, p.data) for p in parts[2:]]
    assert worker_pids  # the fleet has workers; the API processes have none


@pytest.mark.usefixtures("sdk")
async def test_live_join_on_another_api_process_sees_events_as_they_happen(
    fleet: Fleet, gate: Gate
) -> None:
    """Each step is held until the client, joined on the other API process, has seen the run
    wait for it; so every event it receives reached it while the run was still running."""
    a, b = fleet.client(0), fleet.client(1)
    tid = (await a.threads.create())["thread_id"]
    modes: list[StreamMode] = ["updates", "custom"]  # custom: {"held": step} while held
    run = await a.runs.create(
        tid, "slow", input={"delay": 0.01, "tag": "live"}, stream_mode=modes, config=gate.config
    )
    seen: list[str] = []

    async def follow() -> None:
        async for part in b.runs.join_stream(tid, run["run_id"], stream_mode=modes):
            if part.event == "updates":
                seen.append(next(iter(part.data)))
            elif part.event == "custom" and part.data["held"] not in seen:
                seen.append(part.data["held"])
                gate.open(part.data["held"])

    await asyncio.wait_for(follow(), 60)  # events held back until the run ended: never returns
    assert seen == ["step1", "step1", "step2", "step2", "step3", "step3"]  # held, then done


@pytest.mark.usefixtures("sdk")
async def test_wait_on_one_api_process_returns_the_workers_result(fleet: Fleet) -> None:
    for i in (0, 1):
        client = fleet.client(i)
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "pipeline", input={"topic": str(i)})
        assert isinstance(result, dict) and result["summary"] == "3 steps done"
        state: Any = await fleet.client(1 - i).threads.get_state(thread["thread_id"])
        assert state["values"]["summary"] == "3 steps done"


async def _until(check: Any, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.usefixtures("sdk")
async def test_cancel_through_another_api_process_stops_the_run_at_once(fleet: Fleet) -> None:
    a, b = fleet.client(0), fleet.client(1)
    thread = await a.threads.create()
    run = await a.runs.create(thread["thread_id"], "slow", input={"delay": 30})

    async def running() -> bool:
        r = await b.runs.get(thread["thread_id"], run["run_id"])
        return r["status"] == "running"

    await _until(running)
    started = time.monotonic()
    await b.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert time.monotonic() - started < 15.0  # not after the 30-s step it was in
    assert (await a.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"
    assert (await a.threads.get(thread["thread_id"]))["status"] != "busy"


@pytest.mark.usefixtures("sdk")
async def test_mcp_cancel_through_another_api_process_cancels_the_call(
    fleet: Fleet, gate: Gate
) -> None:
    """An MCP tools/call held by API process 0 (its run executed by a worker, held at step2 by
    a gate never opened); its `notifications/cancelled` sent to API process 1 cancels the run
    (found by the call's label), so the call on process 0 ends (docs/protocols.md)."""
    from mcp import ClientSession, types
    from mcp.client.streamable_http import streamable_http_client

    await fleet.client(0).assistants.create("slow", config=gate.config, name="mcp held")
    gate.open("step1")
    first = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first.set()

    url = f"{fleet.apis[0].url}/mcp"
    async with (
        streamable_http_client(url) as (read, write, session_id),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        request_id = s._request_id  # the id the call gets
        call = asyncio.ensure_future(
            s.call_tool("mcp_held", {"delay": 0}, progress_callback=on_progress)
        )
        await asyncio.wait_for(first.wait(), 60)
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id},
        }
        headers = {"Accept": "application/json", "Mcp-Session-Id": str(session_id())}
        async with httpx.AsyncClient(base_url=fleet.apis[1].url, timeout=30) as other:
            sent = await other.post("/mcp", json=note, headers=headers)
        assert sent.status_code == 202
        result = await asyncio.wait_for(call, 60)
    assert isinstance(result, types.CallToolResult)
    assert "step2" not in str(result.content)  # it ended held at step2: cancelled


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
@pytest.mark.usefixtures("sdk")
async def test_double_text_across_api_processes(
    fleet: Fleet, strategy: Literal["interrupt", "rollback"]
) -> None:
    a, b = fleet.client(0), fleet.client(1)
    thread = await a.threads.create()
    tid = thread["thread_id"]
    first = await a.runs.create(tid, "slow", input={"delay": 30, "tag": "first"})

    async def running() -> bool:
        return (await a.runs.get(tid, first["run_id"]))["status"] == "running"

    await _until(running)
    second = await b.runs.create(
        tid, "slow", input={"delay": 0.05, "tag": "second"}, multitask_strategy=strategy
    )
    await b.runs.join(tid, second["run_id"])
    runs = {r["run_id"]: r["status"] for r in await a.runs.list(tid)}
    assert runs[second["run_id"]] == "success"
    if strategy == "interrupt":
        assert runs[first["run_id"]] == "interrupted"
    else:
        assert first["run_id"] not in runs
    state: Any = await a.threads.get_state(tid)
    assert all("first" not in entry for entry in state["values"]["log"][-3:])


@pytest.mark.usefixtures("sdk")
async def test_killed_workers_run_is_resumed_by_another_worker(fleet: Fleet, gate: Gate) -> None:
    a = fleet.client(0)
    thread = await a.threads.create()
    tid = thread["thread_id"]
    # Held in its first step until the worker executing it is dead.
    run = await a.runs.create(tid, "slow", input={"delay": 0.01, "tag": "k"}, config=gate.config)

    victim = fleet.worker_of(await _until(lambda: fleet.executor(run["run_id"])))
    victim.kill9()
    gate.open()
    killed = time.monotonic()
    try:
        result = await a.runs.join(tid, run["run_id"])
        took = time.monotonic() - killed
        row = fleet.run_row(run["run_id"])
        # Attempt 2, or later if a loaded machine let a lease (1.5 s) run out again.
        assert row["status"] == "success" and row["attempt"] >= 2
        assert [e.split(":")[0] for e in result["log"]] == ["step1", "step2", "step3"]
        # lease (1.5 s) + reaper tick + the steps: a few seconds; far less on an idle machine
        assert took < 30.0
    finally:
        victim.start()


@pytest.mark.usefixtures("sdk")
async def test_sigterm_hands_a_workers_run_to_another_worker(fleet: Fleet) -> None:
    a = fleet.client(0)
    thread = await a.threads.create()
    tid = thread["thread_id"]
    run = await a.runs.create(tid, "slow", input={"delay": 20, "tag": "t"})

    victim = fleet.worker_of(await _until(lambda: fleet.executor(run["run_id"])))
    old_pid = victim.pid
    assert victim.stop(timeout=60) == 0  # the grace (1 s) runs out; the run is handed back
    try:
        taken = await _until(lambda: fleet.executor(run["run_id"]))
        assert f":{old_pid}:" not in taken  # the other worker took it at once, no lease wait
        await a.runs.cancel(tid, run["run_id"], wait=True)
    finally:
        victim.start()


def test_ok_checks_the_database_on_request(fleet: Fleet) -> None:
    for api in fleet.apis:
        assert httpx.get(api.url + "/ok", params={"check_db": "1"}).json() == {"ok": True}
    info = httpx.get(fleet.apis[0].url + "/info").json()
    assert info["host"]["database"] == "postgres"


@pytest.mark.timeout(300)  # four interpreters importing LangGraph at once on two cores
def test_processes_starting_together_migrate_once(pg_cluster: PgCluster) -> None:
    database = pg_cluster.create_database()
    cmd = [
        sys.executable,
        "-m",
        "keel.cli",
        "migrate",
        "--config",
        str(GRAPHS_CONFIG),
        "--database",
        database,
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)
    ]
    outs = [p.communicate(timeout=240)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    with psycopg.connect(database) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM keel_migrations ORDER BY 1")]
        cp = conn.execute(
            "SELECT count(*), count(DISTINCT v) FROM checkpoint_migrations"
        ).fetchone()
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert cp is not None and cp[0] == cp[1]


def test_sqlite_refuses_worker_and_no_workers(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "keel.cli"]
    db = ["--config", str(GRAPHS_CONFIG), "--database", f"sqlite:///{tmp_path / 'k.db'}"]
    for args in (["worker", *db], ["serve", *db, "--no-workers"]):
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert "PostgreSQL" in proc.stderr or "postgresql" in proc.stderr


async def test_database_restart_is_survived(tmp_path: Path) -> None:
    """PostgreSQL goes away under a running fleet and comes back on the same port: no process
    exits, /ok?check_db=1 says 503 meanwhile, and runs work again afterwards."""
    cluster = PgCluster(tmp_path / "pg")
    cluster.start()
    fleet = start_fleet(cluster.create_database(), tmp_path, {"KEEL_LEASE_SECONDS": LEASE})
    a = get_client(url=fleet.apis[0].url, api_key=None)
    try:
        thread = await a.threads.create()
        run = await a.runs.create(thread["thread_id"], "slow", input={"delay": 1.0, "tag": "r"})
        await asyncio.sleep(0.5)
        cluster.kill9()
        async with httpx.AsyncClient(base_url=fleet.apis[1].url) as http:
            down = await http.get("/ok", params={"check_db": "1"})
            assert down.status_code == 503 and "database" in down.json()["detail"]
            assert (await http.get("/ok")).status_code == 200
        await asyncio.sleep(2.0)
        cluster.start()
        result = await asyncio.wait_for(a.runs.join(thread["thread_id"], run["run_id"]), 60)
        assert [e.split(":")[0] for e in result["log"]] == ["step1", "step2", "step3"]
        after = await a.runs.wait(None, "pipeline", input={"topic": "after"})
        assert isinstance(after, dict) and after["summary"] == "3 steps done"
        alive = [p.proc.poll() is None for p in fleet.apis if p.proc is not None]
        alive += [w.proc.poll() is None for w in fleet.workers if w.proc is not None]
        assert alive == [True] * 4

    finally:
        await a.aclose()
        stop_fleet(fleet)
        cluster.stop()


@pytest.mark.timeout(300)  # three servers importing LangGraph at once on two cores
def test_servers_starting_together_on_a_fresh_database_all_come_up(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    database = pg_cluster.create_database()
    servers = [KeelServer(GRAPHS_CONFIG, tmp_path / f"s{i}", database=database) for i in range(3)]
    procs = []
    for srv in servers:
        srv.workdir.mkdir(parents=True)
        cmd = serve_command(srv.config, srv.port, database)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 180
        for srv, proc in zip(servers, procs, strict=True):
            while True:
                assert proc.poll() is None, proc.communicate()[0].decode()
                try:
                    if httpx.get(srv.url + "/ok", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "a server did not come up"
                time.sleep(0.05)
        found = httpx.post(servers[0].url + "/assistants/search", json={"limit": 100}).json()
        names = sorted(a["graph_id"] for a in found)
        assert names == sorted(set(names)) and "pipeline" in names  # one system assistant each
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=60)


@pytest.mark.usefixtures("sdk")
async def test_thread_stream_on_another_api_process(fleet: Fleet) -> None:
    a = fleet.client(0)
    tid = (await a.threads.create())["thread_id"]
    got: list[Any] = []
    subscribed = asyncio.Event()

    async def follow() -> None:
        async with httpx.AsyncClient(base_url=fleet.apis[1].url, timeout=30) as raw:
            params = {"stream_mode": ["run_modes", "state_update"]}
            async with raw.stream("GET", f"/threads/{tid}/stream", params=params) as res:
                assert res.status_code == 200
                subscribed.set()
                buf = ""
                async for chunk in res.aiter_text():
                    buf += chunk
                    while "\r\n\r\n" in buf:
                        block, buf = buf.split("\r\n\r\n", 1)
                        lines = dict(ln.split(": ", 1) for ln in block.split("\r\n") if ": " in ln)
                        if "event" in lines:
                            got.append((lines["event"], orjson.loads(lines["data"])))
                        if lines.get("event") == "state_update":
                            return

    follower = asyncio.create_task(follow())
    # The response starts once the subscription is registered (keel/http/threads.py).
    await asyncio.wait_for(subscribed.wait(), 60)
    run = await a.runs.create(tid, "slow", input={"delay": 0.2, "tag": "ts"})
    await a.runs.join(tid, run["run_id"])
    await a.threads.update_state(tid, {"tag": "edited"})
    await asyncio.wait_for(follower, 60)
    names = [name for name, _ in got]
    assert ("metadata", {"status": "run_done", "run_id": run["run_id"]}) in got
    assert names.count("values") >= 3 and names[-1] == "state_update"
    assert got[-1][1]["state"]["values"]["tag"] == "edited"


async def _v3_events(url: str, tid: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A thread's v3 events (raw SSE) from one API process, up to the root run's end."""
    seen: list[dict[str, Any]] = []
    path = f"/threads/{tid}/stream/events"
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as raw,
        raw.stream("POST", path, json=body) as res,
    ):
        assert res.status_code == 200
        async for line in res.aiter_lines():
            if not line.startswith("data:"):
                continue
            seen.append(orjson.loads(line[5:]))
            data = seen[-1]["params"]["data"]
            if seen[-1]["method"] == "lifecycle" and data["event"] == "completed":
                return seen
    return seen


@pytest.mark.usefixtures("sdk")
async def test_v3_since_replay_across_kill9_and_api_processes(fleet: Fleet, gate: Gate) -> None:
    """A v3 run whose worker is killed mid-run: followed on one API process, replayed after a
    `since` on the other; the seqs come from the durable log, so both agree."""
    tid = str(uuid.uuid4())
    start = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "slow", "input": {"delay": 0.01}, "config": gate.config},
    }
    async with httpx.AsyncClient(base_url=fleet.apis[0].url, timeout=30) as raw:
        answer = (await raw.post(f"/threads/{tid}/commands", json=start)).json()
    run_id = answer["result"]["run_id"]
    victim = fleet.worker_of(await _until(lambda: fleet.executor(run_id)))
    victim.kill9()
    gate.open()
    try:
        body = {"channels": ["lifecycle", "updates"]}
        followed = await asyncio.wait_for(_v3_events(fleet.apis[1].url, tid, body), 60)
        assert fleet.run_row(run_id)["attempt"] >= 2
        nodes = [e["params"]["data"]["node"] for e in followed if e["method"] == "updates"]
        assert nodes == ["step1", "step2", "step3"]
        lifecycle = [e["params"]["data"]["event"] for e in followed if e["method"] == "lifecycle"]
        assert "running" in lifecycle and lifecycle[-1] == "completed"
        seqs = [e["seq"] for e in followed]
        assert seqs == sorted(set(seqs))
        middle = len(followed) // 2
        since = {**body, "since": followed[middle]["seq"]}
        replayed = await asyncio.wait_for(_v3_events(fleet.apis[0].url, tid, since), 60)
        assert replayed == followed[middle + 1 :]
    finally:
        victim.start()
