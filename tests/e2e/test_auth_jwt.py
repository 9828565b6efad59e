"""Built-in JWT auth against a real server and a real JWKS endpoint: the authentication attacks
(each a 401 `{"detail"}` that reaches no protected code: the project's `@auth.on` handler,
which records every call, records nothing), header variants, roles, 403 for tokens that grant
nothing, and organisations that see only their own threads. Keel-only (built-in auth)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import database_for
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    Signer,
    b64,
    claims,
    hs256_with,
    unsigned,
)
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"


@dataclass
class Rig:
    url: str
    record: Path
    idp: JwksServer

    def recorded(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {
        "RS256": Signer("RS256", "rsa-1"),
        "ES256": Signer("ES256", "ec-1"),
        "EdDSA": Signer("EdDSA", "ed-1"),
        "other": Signer("RS256", "rsa-1"),  # an attacker's key, claiming the provider's kid
    }


@pytest.fixture(scope="module")
def rig(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    signers: dict[str, Signer],
) -> Iterator[Rig]:
    """A provider serving its JWKS, and a server trusting it (refetches at most once an hour,
    so each unknown-kid refetch is counted exactly)."""
    workdir = tmp_path_factory.mktemp(f"jwt-{backend}")
    keys = [signers[alg].jwk() for alg in ("RS256", "ES256", "EdDSA")]
    with JwksServer(keys) as idp:
        jwt = {
            "issuer": ISSUER,
            "audience": [AUDIENCE, "other-app"],
            "jwks_url": idp.url,
            "jwks_cache_seconds": 3600,
            "jwks_refetch_seconds": 3600,
        }
        auth = {"path": f"{GRAPHS / 'auth_recorder.py'}:auth", "jwt": jwt}
        graphs = {"config_echo": f"{GRAPHS / 'config_echo.py'}:graph"}
        config = workdir / "langgraph.json"
        config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "auth": auth}))
        record = workdir / "record.log"
        database = database_for(backend, request, workdir)
        srv = KeelServer(
            config, workdir, database=database, env={"KEEL_TEST_AUTH_RECORD": str(record)}
        )
        srv.start()
        try:
            yield Rig(srv.url, record, idp)
        finally:
            srv.stop()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rig.url, timeout=30.0) as raw:
        yield raw


def bearer(token: str, name: str = "Authorization", scheme: str = "Bearer") -> dict[str, str]:
    return {name: f"{scheme} {token}"}


# ------------------------------------------------------------------------- the attack table
Attacks = dict[str, tuple[dict[str, str], str]]  # name -> (request headers, the 401's detail)


def attacks(s: dict[str, Signer]) -> Attacks:
    return {**malformed(s["RS256"].token(claims())), **forged(s)}


def malformed(good: str) -> Attacks:
    """Credentials that are no verifiable JWT at all."""
    head, body, sig = good.split(".")
    return {
        "missing": ({}, "Missing credentials"),
        "empty bearer": ({"Authorization": "Bearer"}, "Missing credentials"),
        "basic scheme": ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "Missing credentials"),
        "garbage": (bearer("garbage"), "Invalid credentials"),
        "two segments": (bearer(f"{head}.{body}"), "Invalid credentials"),
        "four segments": (bearer(f"{good}.x"), "Invalid credentials"),
        "not base64url": (bearer(f"{head}.{body}.{sig}%"), "Invalid credentials"),
        "bad base64": (bearer("a.b.c"), "Malformed token"),
        "bad json": (bearer(f"{b64(b'{nope')}.{body}.{sig}"), "Malformed token"),
        "signature stripped": (bearer(f"{head}.{body}."), "Token signature invalid"),
    }


def forged(s: dict[str, Signer]) -> Attacks:
    """Well-formed tokens that must not verify."""
    rsa, now = s["RS256"], int(time.time())
    head, _, sig = rsa.token(claims()).split(".")
    expired = rsa.token(claims(exp=now - 3600, iat=now - 7200))
    return {
        "expired": (bearer(expired), "Token expired"),
        "nbf in the future": (bearer(rsa.token(claims(nbf=now + 3600))), "Token not yet valid"),
        "iat in the future": (bearer(rsa.token(claims(iat=now + 3600))), "Token not yet valid"),
        "wrong issuer": (
            bearer(rsa.token(claims(iss="https://evil"))),
            "Token issuer not accepted",
        ),
        "wrong audience": (bearer(rsa.token(claims(aud="evil"))), "Token audience not accepted"),
        "no exp": (bearer(rsa.token(claims(exp=None))), "Token lacks the 'exp' claim"),
        "no sub": (bearer(rsa.token(claims(sub=None))), "Token lacks the 'sub' claim"),
        "alg none": (
            bearer(unsigned(claims(role="admin"), kid="rsa-1")),
            "Token algorithm 'none' is not accepted",
        ),
        "HS256 keyed with the public key": (
            bearer(hs256_with(rsa.public_pem(), claims(role="admin"), kid="rsa-1")),
            "Token algorithm 'HS256' is not accepted",
        ),
        "ES256 with the RSA key's kid": (
            bearer(s["ES256"].token(claims(), kid="rsa-1")),
            "Token algorithm ES256 does not match its key",
        ),
        "another key, known kid": (bearer(s["other"].token(claims())), "Token signature invalid"),
        "payload swapped": (
            bearer(f"{head}.{b64(json.dumps(claims(org='globex')).encode())}.{sig}"),
            "Token signature invalid",
        ),
        "AUTHORIZATION: bearer, expired": (
            bearer(expired, "AUTHORIZATION", "bearer"),
            "Token expired",
        ),
        "authorization: BEARER, alg none": (
            bearer(unsigned(claims(), kid="rsa-1"), "authorization", "BEARER"),
            "Token algorithm 'none' is not accepted",
        ),
        "x-api-key, forged": ({"X-Api-Key": s["other"].token(claims())}, "Token signature invalid"),
    }


ATTACKS = [
    "missing",
    "empty bearer",
    "basic scheme",
    "garbage",
    "two segments",
    "four segments",
    "not base64url",
    "bad base64",
    "bad json",
    "expired",
    "nbf in the future",
    "iat in the future",
    "wrong issuer",
    "wrong audience",
    "no exp",
    "no sub",
    "alg none",
    "HS256 keyed with the public key",
    "ES256 with the RSA key's kid",
    "another key, known kid",
    "payload swapped",
    "signature stripped",
    "AUTHORIZATION: bearer, expired",
    "authorization: BEARER, alg none",
    "x-api-key, forged",
]


async def refused(
    client: httpx.AsyncClient, rig: Rig, headers: dict[str, str], detail: str
) -> None:
    """Every protected request with these headers is a 401 with `detail`, recording nothing."""
    before = rig.recorded()
    for method, path, payload in (
        ("POST", "/threads", {}),
        ("POST", "/threads/search", {}),
        ("GET", "/threads/00000000-0000-0000-0000-000000000001", None),
    ):
        res = await client.request(method, path, json=payload, headers=headers)
        assert (res.status_code, res.json()) == (401, {"detail": detail}), (method, path)
        assert res.headers["www-authenticate"] == "Bearer"
    assert rig.recorded() == before


async def test_valid_tokens_reach_the_handler(
    client: httpx.AsyncClient, rig: Rig, signers: dict[str, Signer]
) -> None:
    """The control: the handler records what valid tokens do, with every key type."""
    before = len(rig.recorded())
    for alg in ("RS256", "ES256", "EdDSA"):
        res = await client.post("/threads", json={}, headers=bearer(signers[alg].token(claims())))
        assert res.status_code == 200, res.text
    assert rig.recorded()[before:] == ["alice threads.create"] * 3


@pytest.mark.parametrize("attack", ATTACKS)
async def test_attack_is_refused(
    client: httpx.AsyncClient, rig: Rig, signers: dict[str, Signer], attack: str
) -> None:
    headers, detail = attacks(signers)[attack]
    await refused(client, rig, headers, detail)


async def test_unknown_kid_is_refused_after_one_refetch(
    client: httpx.AsyncClient, rig: Rig, signers: dict[str, Signer]
) -> None:
    await client.post("/threads/search", json={}, headers=bearer(signers["RS256"].token(claims())))
    fetched = rig.idp.fetches
    for kid in ("rotated-1", "rotated-2"):
        token = signers["other"].token(claims(role="admin"), kid=kid)
        res = await client.post("/threads/search", json={}, headers=bearer(token))
        assert (res.status_code, res.json()) == (401, {"detail": "Token signed by an unknown key"})
    # The first unknown kid made the server fetch the JWKS again; the second did not (at most
    # one refetch per jwks_refetch_seconds: an attacker cannot make it hammer the provider).
    assert rig.idp.fetches == fetched + 1
    await refused(
        client,
        rig,
        bearer(signers["other"].token(claims(), kid="rotated-3")),
        "Token signed by an unknown key",
    )


@pytest.mark.parametrize(
    ("name", "scheme"),
    [("Authorization", "Bearer"), ("AUTHORIZATION", "bearer"), ("authorization", "BEARER")],
)
async def test_header_case_variants_of_a_valid_token(
    client: httpx.AsyncClient, signers: dict[str, Signer], name: str, scheme: str
) -> None:
    token = signers["EdDSA"].token(claims("casey"))
    res = await client.post("/threads", json={}, headers=bearer(token, name, scheme))
    assert res.status_code == 200, res.text


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"org": None}, "Token has no 'org' claim: every Keel user belongs to an org"),
        (
            {"role": "owner"},
            "Token grants no Keel role: its 'role' claim names none of admin, member, viewer",
        ),
    ],
)
async def test_a_genuine_token_that_grants_nothing_is_403(
    client: httpx.AsyncClient,
    rig: Rig,
    signers: dict[str, Signer],
    change: dict[str, Any],
    detail: str,
) -> None:
    before = rig.recorded()
    token = signers["ES256"].token(claims("nobody", **change))
    res = await client.post("/threads/search", json={}, headers=bearer(token))
    assert (res.status_code, res.json()) == (403, {"detail": detail})
    assert rig.recorded() == before


async def test_viewers_read_but_do_not_write(
    client: httpx.AsyncClient, signers: dict[str, Signer]
) -> None:
    viewer = bearer(signers["RS256"].token(claims("vic", role=["viewer"])))
    assert (await client.post("/threads/search", json={}, headers=viewer)).status_code == 200
    res = await client.post("/threads", json={}, headers=viewer)
    assert (res.status_code, res.json()) == (
        403,
        {"detail": "Role 'viewer' may not create threads"},
    )


async def test_each_org_sees_only_its_own_threads(
    client: httpx.AsyncClient, signers: dict[str, Signer]
) -> None:
    acme = bearer(signers["RS256"].token(claims("ann", "acme")))
    globex = bearer(signers["ES256"].token(claims("gus", "globex", "admin")))
    mine = {"owner": "ann-test-orgs"}
    made = await client.post("/threads", json={"metadata": mine}, headers=acme)
    thread_id = made.json()["thread_id"]
    assert (await client.get(f"/threads/{thread_id}", headers=acme)).status_code == 200
    hidden = await client.get(f"/threads/{thread_id}", headers=globex)
    assert (hidden.status_code, hidden.json()) == (
        404,
        {"detail": f"Thread '{thread_id}' not found"},
    )
    found = await client.post("/threads/search", json={"metadata": mine}, headers=globex)
    assert found.status_code == 200 and found.json() == []
    found = await client.post("/threads/search", json={"metadata": mine}, headers=acme)
    assert [t["thread_id"] for t in found.json()] == [thread_id]
    # The thread stream's WebSocket: the same bearer JWTs on its handshake, the same boundary.
    url = client.base_url.copy_with(scheme="ws", path=f"/threads/{thread_id}/stream/events")
    subscribe = {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}
    async with websockets.connect(str(url), additional_headers=acme) as ws:
        await ws.send(json.dumps(subscribe))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert answer["type"] == "success"
    async with websockets.connect(str(url), additional_headers=globex) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
    assert ws.close_code == 4404
