"""The audit log end to end: exactly one entry per refused request (401, 403, 404, 409) and per
successful change, none for reads; key changes from `keel keys` and the admin endpoints; read
with `GET /keel/audit` (admins, their organisation) and `keel audit`; append-only on both
dialects; never a secret in it.

Keel-only (built-in auth, Keel's tables): nothing here runs against the reference.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api_keys import (
    create_key,
    headers,
    keel_cli,
    key_id,
    org_keys,
    serve_with_keys,
    sql,
)
from tests.support.server import KeelServer

MISSING = "00000000-0000-0000-0000-000000000001"
REFUSED = {401, 403, 404, 409, 413, 429}
COLUMNS = "action, outcome, status, identity, org, resource_id"


@pytest.fixture(scope="module")
def audit_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    yield from serve_with_keys(backend, request, tmp_path_factory.mktemp(f"audit-{backend}"))


@pytest.fixture(scope="module")
def keys(audit_server: KeelServer) -> dict[str, str]:
    return org_keys(audit_server)


@pytest.fixture
async def http(audit_server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=audit_server.url, timeout=30) as raw:
        yield raw


def who(keys: dict[str, str], name: str) -> str:
    return f"key:{key_id(keys[name])}"


async def flushed(http: httpx.AsyncClient, keys: dict[str, str]) -> None:
    """What the server recorded so far is in the table (reading the log flushes it)."""
    got = await http.get("/keel/audit", params={"limit": 1}, headers=headers(keys["a_admin"]))
    assert got.status_code == 200, got.text


def last_id(server: KeelServer) -> int:
    return int(sql(server, "SELECT COALESCE(MAX(id), 0) FROM audit_log")[0][0])


def entries_after(server: KeelServer, mark: int) -> list[tuple[Any, ...]]:
    return sql(server, f"SELECT {COLUMNS} FROM audit_log WHERE id > ? ORDER BY id", (mark,))


async def test_each_refusal_and_each_change_is_recorded_once(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    member, viewer, other = (headers(keys[k]) for k in ("a_member", "a_viewer", "b_member"))
    kept = (await http.post("/threads", json={}, headers=member)).json()["thread_id"]
    await flushed(http, keys)
    mark = last_id(audit_server)
    assert (await http.post("/threads/search", json={})).status_code == 401
    assert (
        await http.post("/threads", json={}, headers={"x-api-key": "keel_x"})
    ).status_code == 401
    assert (await http.post("/threads", json={}, headers=viewer)).status_code == 403
    assert (await http.get(f"/threads/{kept}", headers=other)).status_code == 404
    again = {"thread_id": kept, "if_exists": "raise"}
    assert (await http.post("/threads", json=again, headers=member)).status_code == 409
    assert (await http.get("/nothing/here", headers=member)).status_code == 404
    made = (await http.post("/threads", json={}, headers=member)).json()["thread_id"]
    patch = {"metadata": {"k": "v"}}
    assert (await http.patch(f"/threads/{made}", json=patch, headers=member)).status_code == 200
    run = await http.post(
        f"/threads/{kept}/runs", json={"assistant_id": "pipeline"}, headers=member
    )
    assert run.status_code == 200, run.text
    assert (await http.delete(f"/threads/{made}", headers=member)).status_code == 204
    # Reads that succeed are not recorded, whatever their method.
    assert (await http.get(f"/threads/{kept}", headers=member)).status_code == 200
    assert (await http.post("/threads/search", json={}, headers=viewer)).status_code == 200
    assert (await http.post("/threads/count", json={}, headers=viewer)).status_code == 200
    await flushed(http, keys)
    a, b = "org-a", "org-b"
    assert entries_after(audit_server, mark) == [
        ("POST /threads/search", "refused", 401, None, None, None),
        ("POST /threads", "refused", 401, None, None, None),
        ("POST /threads", "refused", 403, who(keys, "a_viewer"), a, None),
        ("GET /threads/{thread_id}", "refused", 404, who(keys, "b_member"), b, kept),
        ("POST /threads", "refused", 409, who(keys, "a_member"), a, None),
        ("GET /nothing/here", "refused", 404, who(keys, "a_member"), a, None),
        ("POST /threads", "ok", 200, who(keys, "a_member"), a, made),
        ("PATCH /threads/{thread_id}", "ok", 200, who(keys, "a_member"), a, made),
        (
            "POST /threads/{thread_id}/runs",
            "ok",
            200,
            who(keys, "a_member"),
            a,
            run.json()["run_id"],
        ),
        ("DELETE /threads/{thread_id}", "ok", 204, who(keys, "a_member"), a, made),
    ]


async def test_refused_entries_count_the_refused_requests(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """The cross-tenant fuzz test's rule, on a small random mix of callers and requests."""
    kept = (await http.post("/threads", json={}, headers=headers(keys["a_member"]))).json()
    callers: list[dict[str, str]] = [{}, {"x-api-key": "keel_nope"}]
    callers += [headers(k) for k in keys.values()]
    requests = [
        ("GET", f"/threads/{kept['thread_id']}", None),
        ("GET", f"/threads/{MISSING}", None),
        ("POST", "/threads", {}),
        ("POST", "/threads/search", {}),
        ("PATCH", f"/threads/{kept['thread_id']}", {"metadata": {"n": 1}}),
        ("GET", "/keel/audit", None),
        ("GET", "/keel/keys", None),
    ]
    await flushed(http, keys)
    mark = last_id(audit_server)
    rng = random.Random(11)
    refused = 0
    for _ in range(60):
        method, path, payload = rng.choice(requests)
        got = await http.request(method, path, json=payload, headers=rng.choice(callers))
        refused += got.status_code in REFUSED
    await flushed(http, keys)
    outcomes = [e[1] for e in entries_after(audit_server, mark)]
    assert refused > 0 and outcomes.count("refused") == refused


async def test_admins_read_their_organisations_log(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await http.post("/threads", json={}, headers=headers(keys["b_member"]))
    a = headers(keys["a_admin"])
    got = await http.get("/keel/audit", params={"limit": 1000}, headers=a)
    assert got.status_code == 200
    assert got.json() and {e["org"] for e in got.json()} == {"org-a"}
    assert int(got.headers["x-pagination-total"]) == len(got.json())
    ids = [e["id"] for e in got.json()]
    assert ids == sorted(ids, reverse=True)  # newest first
    page = await http.get("/keel/audit", params={"limit": 2, "offset": 1}, headers=a)
    assert [e["id"] for e in page.json()] == ids[1:3]
    refused = await http.get("/keel/audit", params={"outcome": "refused"}, headers=a)
    assert {e["outcome"] for e in refused.json()} == {"refused"}
    future = await http.get("/keel/audit", params={"since": "2999-01-01T00:00:00"}, headers=a)
    assert future.json() == []
    recent = await http.get("/keel/audit", params={"since": "1h"}, headers=a)
    assert len(recent.json()) > 0
    other = await http.get("/keel/audit", params={"org": "org-b"}, headers=a)
    assert other.status_code == 403
    for bad in ({"limit": "0"}, {"limit": "x"}, {"since": "yesterday"}, {"outcome": "maybe"}):
        assert (await http.get("/keel/audit", params=bad, headers=a)).status_code == 422, bad
    for role in ("a_member", "a_viewer", "b_member"):
        got = await http.get("/keel/audit", headers=headers(keys[role]))
        assert got.status_code == 403


async def test_key_changes_are_recorded(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await flushed(http, keys)
    mark = last_id(audit_server)
    made = create_key(audit_server, "org-c", "viewer", "--name", "temp")
    assert keel_cli(audit_server, "keys", "revoke", key_id(made)).returncode == 0
    a = headers(keys["a_admin"])
    minted = (await http.post("/keel/keys", json={"role": "viewer"}, headers=a)).json()
    assert (await http.delete(f"/keel/keys/{minted['key_id']}", headers=a)).status_code == 200
    await flushed(http, keys)
    rows = entries_after(audit_server, mark)
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [
        ("keys.create", "ok", "org-c", key_id(made)),
        ("keys.revoke", "ok", "org-c", key_id(made)),
        ("POST /keel/keys", "ok", "org-a", minted["key_id"]),
        ("DELETE /keel/keys/{key_id}", "ok", "org-a", minted["key_id"]),
    ]
    assert rows[0][3].startswith("cli:") and rows[2][3] == who(keys, "a_admin")


async def test_keel_audit_reads_every_organisation(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await http.get(f"/threads/{MISSING}")  # no credentials: an entry of no organisation
    await http.post("/threads", json={}, headers=headers(keys["a_viewer"]))  # 403, org-a
    await http.post("/threads", json={}, headers=headers(keys["b_member"]))  # a change, org-b
    await flushed(http, keys)
    done = keel_cli(audit_server, "audit", "--json", "--outcome", "refused", "--limit", "500")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {e["outcome"] for e in rows} == {"refused"}
    assert None in {e["org"] for e in rows} and "org-a" in {e["org"] for e in rows}
    only_b = json.loads(keel_cli(audit_server, "audit", "--json", "--org", "org-b").stdout)
    assert only_b and {e["org"] for e in only_b} == {"org-b"}
    assert keel_cli(audit_server, "audit", "--limit", "0").returncode == 2
    table = keel_cli(audit_server, "audit", "--since", "1h", "--limit", "3")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "AT", "IDENTITY"] and len(lines) == 4


async def test_the_audit_log_is_append_only(audit_server: KeelServer, backend: str) -> None:
    assert last_id(audit_server) > 0
    failure: tuple[type[Exception], ...] = (
        (sqlite3.IntegrityError,) if backend == "sqlite" else (psycopg.Error,)
    )
    statements = ["UPDATE audit_log SET outcome='ok'", "DELETE FROM audit_log"]
    if backend == "postgres":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(failure, match="append-only"):
            sql(audit_server, statement)
    assert last_id(audit_server) > 0


async def test_the_audit_log_never_holds_a_secret(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    key = keys["a_member"]
    wrong = key[:-64] + "0" * 64
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    tries: list[tuple[str, str, dict[str, str]]] = [
        ("POST", "/threads", {"x-api-key": key}),
        ("POST", "/threads", {"Authorization": f"Bearer {key}"}),
        ("POST", "/threads", {"x-api-key": wrong}),
        ("POST", "/threads", {"Authorization": f"Bearer {jwt}"}),
        ("POST", "/threads", {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}),
        ("GET", f"/{key}", {"x-api-key": key}),  # a key pasted into a path
        ("POST", "/threads", {"x-api-key": keys["a_viewer"]}),
    ]
    for method, path, given in tries:
        await http.request(method, path, json={}, headers=given)
    minted = await http.post(
        "/keel/keys", json={"role": "viewer"}, headers=headers(keys["a_admin"])
    )
    await flushed(http, keys)
    everything = json.dumps(sql(audit_server, "SELECT * FROM audit_log"))
    secrets = [k.split("_")[2] for k in (*keys.values(), wrong, minted.json()["key"])]
    for secret in [*secrets, jwt, "dXNlcjpwYXNzd29yZA=="]:
        assert secret not in everything
    assert "keel_***" in everything  # the pasted key, scrubbed from the path


async def test_odd_input_is_a_4xx_and_the_log_keeps_going(
    audit_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    a = headers(keys["a_admin"])
    for params in ({"since": "99999999999d"}, {"since": "9999-12-31T23:59:59-23:59"},
                   {"offset": str(2**63)}):  # fmt: skip
        assert (await http.get("/keel/audit", params=params, headers=a)).status_code == 422
    odd = await http.post("/keel/keys", json={"role": "viewer", "name": "a\u0000b"}, headers=a)
    assert odd.status_code == 422
    assert (await http.delete("/keel/keys/%00", headers=a)).status_code == 404
    await flushed(http, keys)
    mark = last_id(audit_server)
    assert (await http.get("/odd%00path", headers=a)).status_code == 404  # NUL: PostgreSQL text
    assert (await http.post("/threads", json={}, headers=a)).status_code == 200
    await flushed(http, keys)
    assert [e[0] for e in entries_after(audit_server, mark)] == [
        "GET /odd\ufffdpath",
        "POST /threads",
    ]
