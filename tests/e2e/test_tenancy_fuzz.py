"""Cross-tenant fuzz: two organisations, two users each with different roles (org A by API keys,
org B by JWT), every endpoint against every id the other organisation owns (threads, runs,
assistants, crons, store items, run and thread streams with Last-Event-ID), thousands of
seeded random requests. The project's own `@auth.on` handler allows everything, so only Keel's
organisation boundary stands in the way.

Zero leaks: no request on the other organisation's ids succeeds (the store's idempotent delete
aside, which must change nothing), and no response body or SSE event holds any of the other
organisation's secrets. Then: as many `refused` audit entries as requests were refused."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import database_for
from tests.support.api_keys import create_key
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, Signer, claims
from tests.support.reference import ROOT
from tests.support.server import KeelServer

pytestmark = pytest.mark.timeout(600)
GRAPHS = ROOT / "tests" / "graphs"
REQUESTS = 10_000
CONCURRENCY = 8
REFUSED = {401, 403, 404, 409, 413, 429}
SCHEDULE = "0 0 1 1 *"  # never due during the test


@dataclass
class Tenant:
    """One organisation: its users' headers, and what it owns (with the secrets therein)."""

    org: str
    users: dict[str, dict[str, str]]  # role -> request headers
    secrets: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (thread_id, run_id)
    checkpoints: list[tuple[str, str]] = field(default_factory=list)
    assistants: list[str] = field(default_factory=list)
    crons: list[str] = field(default_factory=list)
    namespaces: list[list[str]] = field(default_factory=list)

    def secret(self, what: str) -> str:
        made = f"SECRET-{self.org}-{what}-{uuid.uuid4().hex[:8]}"
        self.secrets.append(made)
        return made

    def ids(self) -> set[str]:
        return {*self.threads, *(r for _, r in self.runs), *self.assistants, *self.crons}


@dataclass
class Rig:
    url: str
    database: str
    tenants: dict[str, Tenant]


@pytest.fixture(scope="module")
def rig(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp(f"fuzz-{backend}")
    signer = Signer("ES256", "fuzz-1")
    with JwksServer([signer.jwk()]) as idp:
        auth = {
            "path": f"{GRAPHS / 'auth_allow_all.py'}:auth",
            "api_keys": True,
            "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": idp.url},
        }
        graphs = {
            "config_echo": f"{GRAPHS / 'config_echo.py'}:graph",
            "store_org": f"{GRAPHS / 'store_org.py'}:graph",
        }
        config = workdir / "langgraph.json"
        config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "auth": auth}))
        database = database_for(backend, request, workdir)
        srv = KeelServer(config, workdir, database=database)
        srv.start()
        try:
            key = {r: create_key(srv, "org-a", r) for r in ("admin", "member")}
            a = Tenant("org-a", {r: {"x-api-key": k} for r, k in key.items()})
            b = Tenant(
                "org-b",
                {
                    r: {"Authorization": f"Bearer {signer.token(claims(f'b-{r}', 'org-b', r))}"}
                    for r in ("member", "viewer")
                },
            )
            asyncio.run(_seed_all(srv.url, [a, b]))
            yield Rig(srv.url, database, {"a": a, "b": b})
        finally:
            srv.stop()


async def _seed_all(url: str, tenants: list[Tenant]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        for tenant in tenants:
            await _seed(client, tenant)


async def _ok(res: httpx.Response) -> Any:
    assert res.status_code < 300, (res.request.method, res.request.url, res.text)
    return res.json() if res.content else None


async def _seed(client: httpx.AsyncClient, t: Tenant) -> None:
    """Each organisation: 3 threads with a finished run each, an assistant, crons, store items
    (by the API and by a run's graph), all holding secrets."""
    writer = t.users.get("member") or t.users["admin"]
    assistant = await _ok(
        await client.post(
            "/assistants",
            headers=writer,
            json={
                "graph_id": "config_echo",
                "name": t.secret("assistant"),
                "metadata": {"secret": t.secret("assistant-meta")},
            },
        )
    )
    t.assistants.append(assistant["assistant_id"])
    for i in range(3):
        thread = await _ok(
            await client.post(
                "/threads",
                headers=writer,
                json={
                    "metadata": {"secret": t.secret(f"thread-{i}")},
                },
            )
        )
        tid = thread["thread_id"]
        t.threads.append(tid)
        run = await _ok(
            await client.post(
                f"/threads/{tid}/runs",
                headers=writer,
                json={
                    "assistant_id": assistant["assistant_id"],
                    "input": {},
                    "config": {"configurable": {"secret": t.secret(f"run-{i}")}},
                    "metadata": {"secret": t.secret(f"run-meta-{i}")},
                },
            )
        )
        t.runs.append((tid, run["run_id"]))
        await _ok(await client.get(f"/threads/{tid}/runs/{run['run_id']}/join", headers=writer))
        state = await _ok(await client.get(f"/threads/{tid}/state", headers=writer))
        t.checkpoints.append((tid, state["checkpoint"]["checkpoint_id"]))
    cron = await _ok(
        await client.post(
            f"/threads/{t.threads[0]}/runs/crons",
            headers=writer,
            json={
                "assistant_id": "config_echo",
                "schedule": SCHEDULE,
                "metadata": {"secret": t.secret("cron")},
            },
        )
    )
    t.crons.append(cron["cron_id"])
    cron = await _ok(
        await client.post(
            "/runs/crons",
            headers=writer,
            json={
                "assistant_id": "config_echo",
                "schedule": SCHEDULE,
                "payload": {"input": {"secret": t.secret("stateless-cron")}},
            },
        )
    )
    t.crons.append(cron["cron_id"])
    for i in range(2):
        namespace = ["docs", t.secret(f"namespace-{i}")]
        t.namespaces.append(namespace)
        await _ok(
            await client.put(
                "/store/items",
                headers=writer,
                json={
                    "namespace": namespace,
                    "key": "k",
                    "value": {"text": t.secret(f"item-{i}")},
                },
            )
        )
    await _ok(
        await client.post(
            "/runs/wait",
            headers=writer,
            json={
                "assistant_id": "store_org",
                "input": {"namespace": ["notes"], "put": t.secret("graph-note")},
            },
        )
    )


# ------------------------------------------------------------------------------ the requests
@dataclass
class Probe:
    """One fuzz request: `must_refuse` when it addresses the victim's data by id."""

    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    must_refuse: bool = True
    stream: bool = False


Maker = Callable[[random.Random, Tenant, Tenant], Probe]


def _thread(rng: random.Random, v: Tenant) -> str:
    return rng.choice(v.threads)


def _run(rng: random.Random, v: Tenant) -> tuple[str, str]:
    return rng.choice(v.runs)


def _last_event_id(rng: random.Random) -> dict[str, str]:
    return rng.choice([{}, {"Last-Event-ID": "0"}, {"Last-Event-ID": str(rng.randint(0, 9))}])


def _run_body(rng: random.Random, me: Tenant, victim: Tenant) -> dict[str, Any]:
    assistant = rng.choice(["config_echo", rng.choice(victim.assistants)])
    return {
        "assistant_id": assistant,
        "input": {},
        "if_not_exists": rng.choice(["create", "reject"]),
    }


MAKERS: list[Maker] = [
    # threads
    lambda r, m, v: Probe("GET", f"/threads/{_thread(r, v)}"),
    lambda r, m, v: Probe("PATCH", f"/threads/{_thread(r, v)}", {"metadata": {"owner": "me"}}),
    lambda r, m, v: Probe("DELETE", f"/threads/{_thread(r, v)}"),
    lambda r, m, v: Probe("POST", f"/threads/{_thread(r, v)}/copy", {}),
    lambda r, m, v: Probe(
        "POST",
        "/threads",
        {"thread_id": _thread(r, v), "if_exists": r.choice(["raise", "do_nothing"])},
    ),
    lambda r, m, v: Probe("GET", f"/threads/{_thread(r, v)}/state"),
    lambda r, m, v: Probe("GET", "/threads/{}/state/{}".format(*r.choice(v.checkpoints))),
    lambda r, m, v: Probe("POST", f"/threads/{_thread(r, v)}/state", {"values": {"seen": {}}}),
    lambda r, m, v: Probe(
        "POST",
        f"/threads/{r.choice(v.checkpoints)[0]}/state/checkpoint",
        {"checkpoint": {"checkpoint_id": r.choice(v.checkpoints)[1]}},
    ),
    lambda r, m, v: Probe("GET", f"/threads/{_thread(r, v)}/history"),
    lambda r, m, v: Probe("POST", f"/threads/{_thread(r, v)}/history", {"limit": 5}),
    lambda r, m, v: Probe(
        "GET", f"/threads/{_thread(r, v)}/stream", headers=_last_event_id(r), stream=True
    ),
    # runs
    lambda r, m, v: Probe("GET", f"/threads/{_thread(r, v)}/runs"),
    lambda r, m, v: Probe("GET", "/threads/{}/runs/{}".format(*_run(r, v))),
    lambda r, m, v: Probe("DELETE", "/threads/{}/runs/{}".format(*_run(r, v))),
    lambda r, m, v: Probe("GET", "/threads/{}/runs/{}/join".format(*_run(r, v))),
    lambda r, m, v: Probe(
        "GET",
        "/threads/{}/runs/{}/stream".format(*_run(r, v)),
        headers=_last_event_id(r),
        stream=True,
    ),
    lambda r, m, v: Probe("POST", "/threads/{}/runs/{}/cancel".format(*_run(r, v)), {}),
    lambda r, m, v: Probe("POST", f"/threads/{_thread(r, v)}/runs", _run_body(r, m, v)),
    lambda r, m, v: Probe("POST", f"/threads/{_thread(r, v)}/runs/wait", _run_body(r, m, v)),
    lambda r, m, v: Probe(
        "POST", f"/threads/{_thread(r, v)}/runs/stream", _run_body(r, m, v), stream=True
    ),
    lambda r, m, v: Probe(
        "POST", f"/threads/{r.choice(m.threads)}/runs", {"assistant_id": r.choice(v.assistants)}
    ),
    lambda r, m, v: Probe("POST", "/runs/wait", {"assistant_id": r.choice(v.assistants)}),
    lambda r, m, v: Probe("POST", "/runs/batch", [{"assistant_id": r.choice(v.assistants)}]),
    lambda r, m, v: Probe(
        "POST", "/runs/cancel", {"thread_id": _run(r, v)[0], "run_ids": [_run(r, v)[1]]}
    ),
    # assistants
    lambda r, m, v: Probe("GET", f"/assistants/{r.choice(v.assistants)}"),
    lambda r, m, v: Probe(
        "GET",
        f"/assistants/{r.choice(v.assistants)}/" + r.choice(["graph", "schemas", "subgraphs"]),
    ),
    lambda r, m, v: Probe("POST", f"/assistants/{r.choice(v.assistants)}/versions", {}),
    lambda r, m, v: Probe("PATCH", f"/assistants/{r.choice(v.assistants)}", {"metadata": {}}),
    lambda r, m, v: Probe("DELETE", f"/assistants/{r.choice(v.assistants)}"),
    lambda r, m, v: Probe("POST", f"/assistants/{r.choice(v.assistants)}/latest", {"version": 1}),
    lambda r, m, v: Probe(
        "POST",
        "/assistants",
        {
            "assistant_id": r.choice(v.assistants),
            "graph_id": "config_echo",
            "if_exists": r.choice(["raise", "do_nothing"]),
        },
    ),
    # crons
    lambda r, m, v: Probe("GET", f"/runs/crons/{r.choice(v.crons)}"),
    lambda r, m, v: Probe("PATCH", f"/runs/crons/{r.choice(v.crons)}", {"schedule": SCHEDULE}),
    lambda r, m, v: Probe("DELETE", f"/runs/crons/{r.choice(v.crons)}"),
    lambda r, m, v: Probe(
        "POST",
        f"/threads/{_thread(r, v)}/runs/crons",
        {"assistant_id": "config_echo", "schedule": SCHEDULE},
    ),
    # reads that may succeed, but must show nothing of the victim's (the store answers a
    # missing item with 200 null, as the reference)
    lambda r, m, v: Probe(
        "GET",
        "/store/items",
        {"namespace": ".".join(r.choice(v.namespaces)), "key": "k"},
        must_refuse=False,
    ),
    lambda r, m, v: Probe(
        "POST",
        "/threads/search",
        {"metadata": r.choice([{}, {"secret": r.choice(v.secrets)}]), "limit": 100},
        must_refuse=False,
    ),
    lambda r, m, v: Probe("POST", "/threads/count", {}, must_refuse=False),
    lambda r, m, v: Probe(
        "POST", "/threads/prune", {"thread_ids": [_thread(r, v)]}, must_refuse=False
    ),
    lambda r, m, v: Probe("POST", "/assistants/search", {"limit": 100}, must_refuse=False),
    lambda r, m, v: Probe("POST", "/assistants/count", {}, must_refuse=False),
    lambda r, m, v: Probe("POST", "/runs/crons/search", {"limit": 100}, must_refuse=False),
    lambda r, m, v: Probe("POST", "/runs/crons/count", {}, must_refuse=False),
    lambda r, m, v: Probe(
        "POST",
        "/store/items/search",
        {"namespace_prefix": r.choice([[], ["docs"], r.choice(v.namespaces)]), "limit": 100},
        must_refuse=False,
    ),
    lambda r, m, v: Probe("POST", "/store/namespaces", {"limit": 100}, must_refuse=False),
    lambda r, m, v: Probe(
        "DELETE",
        "/store/items",
        {"namespace": r.choice(v.namespaces), "key": "k"},
        must_refuse=False,
    ),
    lambda r, m, v: Probe(
        "POST",
        "/runs/wait",
        {"assistant_id": "store_org", "input": {"namespace": ["notes"]}},
        must_refuse=False,
    ),
]


def _probe(rng: random.Random, tenants: dict[str, Tenant]) -> Probe:
    """A random request by a random user of one organisation against the other's data (or,
    now and then, with no or a forged credential)."""
    me_name = rng.choice(["a", "b"])
    me, victim = tenants[me_name], tenants["b" if me_name == "a" else "a"]
    probe = rng.choice(MAKERS)(rng, me, victim)
    roll = rng.random()
    if roll < 0.03:
        probe.headers = {**probe.headers}  # no credential at all
    elif roll < 0.06:
        probe.headers = {**probe.headers, "x-api-key": f"keel_{uuid.uuid4().hex[:16]}_{'0' * 64}"}
    else:
        probe.headers = {**probe.headers, **me.users[rng.choice(sorted(me.users))]}
    return probe


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)


async def _send(client: httpx.AsyncClient, probe: Probe, secrets: list[str], tally: Tally) -> None:
    kwargs: dict[str, Any] = {"headers": probe.headers}
    if probe.method == "GET" and isinstance(probe.body, dict):
        kwargs["params"] = probe.body
    elif probe.body is not None:
        kwargs["json"] = probe.body
    if probe.stream or probe.path.endswith("/join"):
        async with client.stream(probe.method, probe.path, **kwargs) as res:
            if res.status_code < 300:  # a leak: do not wait for a stream that never ends
                body = b""
            else:
                body = await res.aread()
            status = res.status_code
    else:
        res = await client.request(probe.method, probe.path, **kwargs)
        status, body = res.status_code, res.content
    tally.sent += 1
    tally.by_status[status] = tally.by_status.get(status, 0) + 1
    if status in REFUSED:
        tally.refused += 1
    text = body.decode(errors="replace")
    shown = [s for s in secrets if s in text]
    if (probe.must_refuse and status < 300) or shown or status >= 500:
        tally.leaks.append(f"{probe.method} {probe.path} -> {status} {shown} {text[:200]}")


async def _fuzz(rig: Rig, count: int, seed: int) -> Tally:
    rng = random.Random(seed)
    probes = [_probe(rng, rig.tenants) for _ in range(count)]
    tally = Tally()
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=rig.url, timeout=60.0) as client:

        async def one(probe: Probe, victim: Tenant) -> None:
            async with gate:
                await _send(client, probe, victim.secrets, tally)

        await asyncio.gather(*(one(p, _victim_of(p, rig.tenants)) for p in probes))
    return tally


def _victim_of(probe: Probe, tenants: dict[str, Tenant]) -> Tenant:
    """Both organisations' secrets are the other's: a request of A must show none of B's, and
    a request with no (valid) credential must show none of either."""
    merged = Tenant("both", {})
    merged.secrets = [*tenants["a"].secrets, *tenants["b"].secrets]
    for name in ("a", "b"):
        mine = tenants[name].users.values()
        if any(probe.headers.items() >= h.items() for h in mine):
            return tenants["b" if name == "a" else "a"]
    return merged


# ------------------------------------------------------------------------------- the checks
def _refused_entries(database: str) -> int:
    """`refused` rows of the audit log, read from the database itself."""
    sql = "SELECT COUNT(*) FROM audit_log WHERE outcome = 'refused'"
    if database.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(database) as pg:
        row = pg.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


async def _flush_audit(rig: Rig) -> None:
    """`GET /keel/audit` writes what the server has queued before it answers."""
    async with httpx.AsyncClient(base_url=rig.url, timeout=60.0) as client:
        await _ok(await client.get("/keel/audit", headers=rig.tenants["a"].users["admin"]))


async def _everything_is_still_there(rig: Rig) -> None:
    """The victims' data survived the attacks unchanged."""
    async with httpx.AsyncClient(base_url=rig.url, timeout=60.0) as client:
        for t in rig.tenants.values():
            who = t.users.get("member") or t.users["admin"]
            for tid in t.threads:
                thread = await _ok(await client.get(f"/threads/{tid}", headers=who))
                assert thread["metadata"]["secret"] in t.secrets
            for tid, rid in t.runs:
                assert await _ok(await client.get(f"/threads/{tid}/runs/{rid}", headers=who))
            for aid in t.assistants:
                assert await _ok(await client.get(f"/assistants/{aid}", headers=who))
            for cid in t.crons:
                assert await _ok(await client.get(f"/runs/crons/{cid}", headers=who))
            for ns in t.namespaces:
                params = {"namespace": ".".join(ns), "key": "k"}
                item = await _ok(await client.get("/store/items", headers=who, params=params))
                assert item["value"]["text"] in t.secrets


async def test_no_request_crosses_organisations(rig: Rig) -> None:
    await _flush_audit(rig)
    before = _refused_entries(rig.database)
    tally = await _fuzz(rig, REQUESTS, seed=20261130)
    assert tally.sent == REQUESTS
    print(f"fuzz: {tally.sent} requests, {tally.refused} refused, statuses {tally.by_status}")
    assert tally.leaks == [], "\n".join(tally.leaks[:20])
    await _flush_audit(rig)
    assert _refused_entries(rig.database) - before == tally.refused, tally.by_status
    await _everything_is_still_there(rig)
