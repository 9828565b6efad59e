"""Built-in API keys end to end: `keel keys create|list|revoke` on the server's database, keys
used as `x-api-key` and `Authorization: Bearer` against a real server, revocation and expiry
refusing the next request, malformed keys, the built-in roles and organisation boundaries.

Keel-only (built-in auth and its config): nothing here runs against the reference.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from langgraph_sdk import get_client

from keel import clock
from tests.e2e.helpers import poll, system_id
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


@pytest.fixture(scope="module")
def keys_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    yield from serve_with_keys(backend, request, tmp_path_factory.mktemp(f"keys-{backend}"))


@pytest.fixture(scope="module")
def keys(keys_server: KeelServer) -> dict[str, str]:
    return org_keys(keys_server)


@pytest.fixture
async def http(keys_server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keys_server.url, timeout=30) as raw:
        yield raw


async def new_thread(http: httpx.AsyncClient, key: str) -> str:
    got = await http.post("/threads", json={}, headers=headers(key))
    assert got.status_code == 200, got.text
    return str(got.json()["thread_id"])


async def refused_next(
    http: httpx.AsyncClient, key: str, backend: str, other_process: bool
) -> httpx.Response:
    """The next request with `key` after a change to it. SQLite, or a change made by this same
    server: at once. A change another process made on PostgreSQL reaches the server by NOTIFY:
    polled, within a bound (keel/auth/keys.py)."""

    async def search() -> httpx.Response:
        return await http.post("/threads/search", json={}, headers=headers(key))

    if backend == "sqlite" or not other_process:
        return await search()
    return await poll(search, lambda r: r.status_code == 401, within=30)


# ------------------------------------------------------------------ using keys
async def test_a_key_from_the_cli_works_as_x_api_key_and_bearer(
    keys_server: KeelServer, http: httpx.AsyncClient
) -> None:
    key = create_key(keys_server, "org-a", "member", "--name", "ci")
    assert key.startswith("keel_") and len(key) == len("keel_") + 16 + 1 + 64
    thread = await new_thread(http, key)
    got = await http.get(f"/threads/{thread}", headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200
    sdk = get_client(url=keys_server.url, api_key=key)  # the SDK sends x-api-key
    try:
        assert (await sdk.threads.get(thread))["thread_id"] == thread
    finally:
        await sdk.aclose()


@pytest.mark.parametrize(
    "name, value",
    [
        ("X-API-KEY", "{key}"),
        ("X-Api-Key", "{key}"),
        ("authorization", "Bearer  {key}"),
        ("AUTHORIZATION", "Bearer {key}"),
        ("Authorization", "bearer {key}"),
        ("authorization", "BEARER {key}"),
    ],
)
async def test_header_names_and_scheme_are_case_insensitive(
    http: httpx.AsyncClient, keys: dict[str, str], name: str, value: str
) -> None:
    given = {name: value.format(key=keys["a_member"])}
    got = await http.post("/threads/search", json={}, headers=given)
    assert got.status_code == 200, got.text


def _malformed(key: str) -> list[dict[bytes, bytes]]:
    other_secret = key[:-64] + ("0" if key[-1] != "0" else "1") * 64
    given: list[dict[str, str | bytes]] = [
        {},
        {"x-api-key": ""},
        {"x-api-key": "keel_"},
        {"x-api-key": key[:-1]},  # one digit short
        {"x-api-key": key + "0"},  # one too many
        {"x-api-key": key.upper()},
        {"x-api-key": other_secret},  # a known key id, the wrong secret
        {"x-api-key": f"keel_{'0' * 16}_{'0' * 64}"},  # an unknown key id
        {"x-api-key": key.replace("_", "-")},
        {"x-api-key": ("keel_" + "é" * 10).encode("latin-1")},  # not ASCII
        {"Authorization": key},  # no scheme
        {"Authorization": f"Basic {key}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-key"},
    ]
    return [
        {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in h.items()} for h in given
    ]


async def test_missing_and_malformed_keys_are_401(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    for given in _malformed(keys["a_member"]):
        got = await http.post("/threads/search", json={}, headers=given)
        assert got.status_code == 401, given
        assert set(got.json()) == {"detail"}
        assert got.headers["www-authenticate"] == "Bearer"


async def test_list_shows_every_key_but_never_a_secret(
    keys_server: KeelServer, keys: dict[str, str]
) -> None:
    done = keel_cli(keys_server, "keys", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = {k["key_id"]: k for k in json.loads(done.stdout)}
    for key in keys.values():
        assert key_id(key) in listed
        assert key.split("_")[2] not in done.stdout
    admin = listed[key_id(keys["a_admin"])]
    assert admin["org"] == "org-a" and admin["role"] == "admin" and admin["name"] == "a admin"
    assert admin["last_used_at"] is not None and admin["revoked_at"] is None
    assert set(admin) == {
        "key_id", "name", "org", "role", "created_at", "created_by", "expires_at",
        "revoked_at", "last_used_at",
    }  # fmt: skip
    table = keel_cli(keys_server, "keys", "list", "--org", "org-b")
    assert key_id(keys["b_admin"]) in table.stdout and key_id(keys["a_admin"]) not in table.stdout


# ------------------------------------------------------------------ revocation and expiry
async def test_revoked_with_the_cli_the_next_request_is_401(
    keys_server: KeelServer, http: httpx.AsyncClient, backend: str
) -> None:
    key = create_key(keys_server, "org-a", "member")
    assert (await http.post("/threads/search", json={}, headers=headers(key))).status_code == 200
    done = keel_cli(keys_server, "keys", "revoke", key_id(key))
    assert done.returncode == 0, done.stderr
    got = await refused_next(http, key, backend, other_process=True)
    assert got.status_code == 401 and got.json() == {"detail": "API key revoked"}
    listed = json.loads(keel_cli(keys_server, "keys", "list", "--json").stdout)
    assert [k["revoked_at"] for k in listed if k["key_id"] == key_id(key)] != [None]


async def test_revoked_by_the_admin_endpoint_the_next_request_is_401(
    http: httpx.AsyncClient, keys: dict[str, str], backend: str
) -> None:
    made = await http.post("/keel/keys", json={"role": "viewer"}, headers=headers(keys["a_admin"]))
    key = made.json()["key"]
    assert (await http.post("/threads/search", json={}, headers=headers(key))).status_code == 200
    gone = await http.delete(f"/keel/keys/{key_id(key)}", headers=headers(keys["a_admin"]))
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    got = await refused_next(http, key, backend, other_process=False)
    assert got.status_code == 401
    again = await http.delete(f"/keel/keys/{key_id(key)}", headers=headers(keys["a_admin"]))
    assert again.json()["revoked_at"] == gone.json()["revoked_at"]  # revoking twice: no change


async def test_an_expired_key_is_refused_on_its_next_request(
    keys_server: KeelServer, http: httpx.AsyncClient, backend: str
) -> None:
    key = create_key(keys_server, "org-a", "member", "--expires", "1")
    assert (await http.post("/threads/search", json={}, headers=headers(key))).status_code == 200
    # What a day's wait would do: the key's expiry is now in the past.
    sql(keys_server, "UPDATE api_keys SET expires_at=? WHERE key_id=?",
        (clock.iso(clock.now() - 1), key_id(key)))  # fmt: skip
    if backend == "postgres":
        sql(keys_server, "SELECT pg_notify('keel_keys', ?)", (key_id(key),))
    got = await refused_next(http, key, backend, other_process=True)
    assert got.status_code == 401 and got.json() == {"detail": "API key expired"}


async def test_cli_refuses_bad_arguments_clearly(keys_server: KeelServer) -> None:
    done = keel_cli(keys_server, "keys", "create", "--org", "o", "--role", "owner")
    assert done.returncode == 2 and "role must be one of admin, member, viewer" in done.stderr
    done = keel_cli(
        keys_server, "keys", "create", "--org", "o", "--role", "viewer", "--expires", "-1"
    )
    assert done.returncode == 2 and "expires" in done.stderr
    done = keel_cli(keys_server, "keys", "revoke", "0123456789abcdef")
    assert done.returncode == 2 and "not found" in done.stderr


# ------------------------------------------------------------------ roles
WRITES = [
    pytest.param("POST", "/threads", {}, id="thread-create"),
    pytest.param("PATCH", "/threads/{thread}", {"metadata": {"x": 1}}, id="thread-update"),
    pytest.param("POST", "/threads/{thread}/runs", {"assistant_id": "pipeline"}, id="run-create"),
    pytest.param("POST", "/runs/wait", {"assistant_id": "pipeline"}, id="stateless-run"),
    pytest.param("POST", "/assistants", {"graph_id": "pipeline"}, id="assistant-create"),
    pytest.param("POST", "/runs/crons", {"assistant_id": "pipeline", "schedule": "0 0 1 1 *"},
                 id="cron-create"),
    pytest.param("PUT", "/store/items", {"namespace": ["n"], "key": "k", "value": {"v": 1}},
                 id="store-put"),
    pytest.param("DELETE", "/threads/{thread}", None, id="thread-delete"),
]  # fmt: skip
READS = [
    ("GET", "/threads/{thread}", None),
    ("POST", "/threads/search", {}),
    ("POST", "/threads/count", {}),
    ("GET", "/threads/{thread}/state", None),
    ("POST", "/assistants/search", {}),
    ("GET", f"/assistants/{system_id('pipeline')}", None),
    ("POST", "/runs/crons/search", {}),
    ("POST", "/store/items/search", {"namespace_prefix": ["n"]}),
]


async def _call(
    http: httpx.AsyncClient, key: str, method: str, path: str, payload: Any, thread: str
) -> httpx.Response:
    url = path.format(thread=thread)
    return await http.request(method, url, json=payload, headers=headers(key))


@pytest.mark.parametrize("method, path, payload", WRITES)
async def test_a_viewer_cannot_write(
    http: httpx.AsyncClient, keys: dict[str, str], method: str, path: str, payload: Any
) -> None:
    thread = await new_thread(http, keys["a_member"])
    got = await _call(http, keys["a_viewer"], method, path, payload, thread)
    assert got.status_code == 403, got.text
    assert got.json()["detail"].startswith("Role 'viewer' may not")


@pytest.mark.parametrize("method, path, payload", READS)
async def test_a_viewer_can_read(
    http: httpx.AsyncClient, keys: dict[str, str], method: str, path: str, payload: Any
) -> None:
    thread = await new_thread(http, keys["a_member"])
    got = await _call(http, keys["a_viewer"], method, path, payload, thread)
    assert got.status_code == 200, got.text


async def test_a_member_can_write_everything_but_administer(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    thread = await new_thread(http, keys["a_member"])
    for param in WRITES:
        method, path, payload = (str(param.values[0]), str(param.values[1]), param.values[2])
        got = await _call(http, keys["a_member"], method, path, payload, thread)
        assert got.status_code in (200, 204), (path, got.text)
    for method, path in (("GET", "/keel/audit"), ("GET", "/keel/keys"), ("POST", "/keel/keys")):
        for role in ("a_member", "a_viewer"):
            given = headers(keys[role])
            got = await http.request(method, path, json={"role": "viewer"}, headers=given)
            assert got.status_code == 403 and got.json() == {"detail": "Admins only"}, got.text
    admin = await http.get("/keel/audit", headers=headers(keys["a_admin"]))
    assert admin.status_code == 200 and isinstance(admin.json(), list)


# ------------------------------------------------------------------ organisations
async def test_another_organisations_thread_is_not_found(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    thread = await new_thread(http, keys["a_member"])
    b = headers(keys["b_member"])
    missing = await http.get(f"/threads/{MISSING}", headers=b)
    for method, payload in (("GET", None), ("PATCH", {"metadata": {"x": 1}}), ("DELETE", None)):
        got = await http.request(method, f"/threads/{thread}", json=payload, headers=b)
        assert got.status_code == 404, (method, got.text)
        assert got.json()["detail"] == missing.json()["detail"].replace(MISSING, thread)
    found = await http.post("/threads/search", json={"limit": 1000}, headers=b)
    assert thread not in {t["thread_id"] for t in found.json()}
    count = await http.post("/threads/count", json={}, headers=b)
    assert count.json() == len(found.json())
    mine = await http.get(f"/threads/{thread}", headers=headers(keys["a_viewer"]))
    assert mine.status_code == 200  # still there, for its own organisation


async def test_the_thread_stream_websocket_takes_keys_and_keeps_organisations_apart(
    keys_server: KeelServer, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """`WS /threads/{id}/stream/events` with an `x-api-key` handshake: its organisation's
    thread streams, another's is closed 4404, a bad key is the HTTP 401."""
    thread = await new_thread(http, keys["a_member"])
    url = keys_server.url.replace("http://", "ws://") + f"/threads/{thread}/stream/events"
    subscribe = {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}
    async with websockets.connect(url, additional_headers=headers(keys["a_viewer"])) as ws:
        await ws.send(json.dumps(subscribe))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert answer["type"] == "success" and answer["id"] == 1
    async with websockets.connect(url, additional_headers=headers(keys["b_member"])) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
    assert ws.close_code == 4404
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=headers("keel_nope")):
            pass
    assert refused.value.response.status_code == 401


async def test_admins_manage_their_own_organisations_keys_only(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    a = headers(keys["a_admin"])
    other = await http.post("/keel/keys", json={"role": "admin", "org": "org-b"}, headers=a)
    assert other.status_code == 403
    own = await http.post("/keel/keys", json={"role": "member", "org": "org-a"}, headers=a)
    assert own.status_code == 200 and own.json()["org"] == "org-a"
    assert own.json()["created_by"] == f"key:{key_id(keys['a_admin'])}"
    gone = await http.delete(f"/keel/keys/{key_id(keys['b_member'])}", headers=a)
    assert gone.status_code == 404
    listed = {k["key_id"] for k in (await http.get("/keel/keys", headers=a)).json()}
    assert key_id(keys["a_viewer"]) in listed and key_id(keys["b_member"]) not in listed
    bad = await http.post("/keel/keys", json={"role": "owner"}, headers=a)
    assert bad.status_code == 422
    check = await http.post("/threads/search", json={}, headers=headers(keys["b_member"]))
    assert check.status_code == 200  # org-a's admin could not revoke it
