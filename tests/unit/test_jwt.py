"""`auth.jwt`: the configuration, the verifier (keys made here, JWKS from a file and from a real
local HTTP server), the attacks it refuses, claims mapping, the token cache, and the JWKS
cache and refetch limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.auth import roles
from keel.auth.guard import Guard
from keel.auth.handlers import Credentials
from keel.auth.jwt import JwtAuthenticator, jwt_config, usable_keys
from keel.auth.user import AuthenticationError, User
from keel.errors import ConfigError, Forbidden, Unavailable
from keel.settings import AuthSettings
from tests.support.clock import FakeClock
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


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    """The provider's keys (one per type), and an attacker's RSA key."""
    return {
        "RS256": Signer("RS256", "rsa-1"),
        "ES256": Signer("ES256", "ec-1"),
        "EdDSA": Signer("EdDSA", "ed-1"),
        "other": Signer("RS256", "rsa-1"),  # the attacker's, claiming the provider's kid
    }


def _jwks(signers: dict[str, Signer]) -> dict[str, Any]:
    return {"keys": [signers[alg].jwk() for alg in ("RS256", "ES256", "EdDSA")]}


def _file(tmp_path: Path, jwks: dict[str, Any], name: str = "jwks.json") -> str:
    (tmp_path / name).write_text(json.dumps(jwks))
    return name


def _verifier(tmp_path: Path, signers: dict[str, Signer], **raw: Any) -> JwtAuthenticator:
    if "jwks_file" not in raw:
        raw["jwks_file"] = _file(tmp_path, _jwks(signers), "all.json")
    config = {"issuer": ISSUER, "audience": AUDIENCE, "leeway_seconds": 30, **raw}
    return JwtAuthenticator(jwt_config(config, tmp_path))


@pytest.fixture
def jwks_server(signers: dict[str, Signer]) -> Iterator[JwksServer]:
    with JwksServer(_jwks(signers)["keys"]) as server:
        yield server


# --------------------------------------------------------------------------- configuration
def test_config_defaults(tmp_path: Path) -> None:
    config = jwt_config(
        {"issuer": ISSUER, "audience": ["a", "b"], "jwks_url": "https://x/j"}, tmp_path
    )
    assert config.algorithms == ("RS256", "ES256", "EdDSA")
    assert (config.leeway_seconds, config.jwks_cache_seconds) == (30, 300)
    assert config.claims == {
        "identity": "sub",
        "org": "org",
        "role": "role",
        "display_name": "name",
    }
    assert config.audience == ("a", "b") and config.default_role is None
    relative = jwt_config({"issuer": "i", "audience": "a", "jwks_file": "k/j.json"}, tmp_path)
    assert relative.jwks_file == tmp_path / "k" / "j.json"


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "None"])
def test_config_refuses_symmetric_and_unsigned_algorithms(tmp_path: Path, alg: str) -> None:
    raw = {"issuer": "i", "audience": "a", "jwks_url": "https://x/j", "algorithms": ["RS256", alg]}
    with pytest.raises(ConfigError, match=f"'{alg}' is refused: Keel verifies only asymmetric"):
        jwt_config(raw, tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": None}, "issuer must be a non-empty string"),
        ({"audience": []}, "audience must be a string or a list"),
        ({"jwks_file": "j.json"}, "exactly one of 'jwks_url' and 'jwks_file'"),
        ({"jwks_url": None}, "exactly one of 'jwks_url' and 'jwks_file'"),
        ({"jwks_url": "file:///etc/passwd"}, "jwks_url must be an http"),
        ({"algorithms": ["RS1"]}, "'RS1' is not one of"),
        ({"leeway_seconds": 3600}, "leeway_seconds must be a number from 0 to 300"),
        ({"jwks_cache_seconds": True}, "jwks_cache_seconds must be a number"),
        ({"claims": {"groups": "g"}}, "claims must be an object with keys among"),
        ({"claims": {"org": ""}}, "claims.org must be a non-empty string"),
        ({"default_role": "owner"}, "default_role must be one of admin, member, viewer"),
        ({"secret": "s"}, r"unsupported keys \['secret'\]"),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = {"issuer": "i", "audience": "a", "jwks_url": "https://x/j", **change}
    with pytest.raises(ConfigError, match=message):
        jwt_config({k: v for k, v in raw.items() if v is not None}, tmp_path)


def test_jwks_file_is_read_at_start(tmp_path: Path, signers: dict[str, Signer]) -> None:
    with pytest.raises(ConfigError, match=r"jwks_file .*missing\.json"):
        _verifier(tmp_path, signers, jwks_file="missing.json")
    (tmp_path / "bad.json").write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(ConfigError, match="no usable asymmetric signing key"):
        _verifier(tmp_path, signers, jwks_file="bad.json")


def test_symmetric_and_encryption_keys_are_left_out(signers: dict[str, Signer]) -> None:
    keys = usable_keys(
        {
            "keys": [
                {"kty": "oct", "kid": "hmac", "k": b64(signers["RS256"].public_pem())},
                signers["ES256"].jwk(use="enc"),
                signers["RS256"].jwk(),
                "not a key",
            ]
        }
    )
    assert list(keys) == ["rsa-1"]


# ------------------------------------------------------------------------------ verifying
@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_each_key_type_verifies(tmp_path: Path, signers: dict[str, Signer], alg: str) -> None:
    verifier = _verifier(tmp_path, signers)
    user = await verifier.authenticate(signers[alg].token(claims("alice", "acme", "viewer")))
    assert (user.identity, user.org, user.role, user.display_name) == (
        "alice",
        "acme",
        "viewer",
        "Alice",
    )
    assert user.permissions == sorted(roles.ROLES["viewer"])
    assert user["claims"]["iss"] == ISSUER and user.to_dict()["org"] == "acme"


def _attacks(s: dict[str, Signer]) -> dict[str, tuple[str, str]]:
    """Forged or unusable tokens: name -> (token, the 401's detail)."""
    rsa, now = s["RS256"], int(time.time())
    good = rsa.token(claims())
    head, _, sig = good.split(".")
    return {
        "bad base64": ("a.b.c", "Malformed token"),
        "bad json": (f"{b64(b'not json')}.{b64(b'{}')}.x", "Malformed token"),
        "header not an object": (f"{b64(b'[1]')}.{b64(b'{}')}.x", "Malformed token"),
        "expired": (rsa.token(claims(exp=now - 3600, iat=now - 7200)), "Token expired"),
        "nbf in the future": (rsa.token(claims(nbf=now + 3600)), "Token not yet valid"),
        "iat in the future": (rsa.token(claims(iat=now + 3600)), "Token not yet valid"),
        "wrong issuer": (rsa.token(claims(iss="https://evil")), "Token issuer not accepted"),
        "wrong audience": (rsa.token(claims(aud="other")), "Token audience not accepted"),
        "no exp": (rsa.token(claims(exp=None)), "Token lacks the 'exp' claim"),
        "no aud": (rsa.token(claims(aud=None)), "Token lacks the 'aud' claim"),
        "no sub": (rsa.token(claims(sub=None)), "Token lacks the 'sub' claim"),
        "alg none": (unsigned(claims(), kid="rsa-1"), "Token algorithm 'none' is not accepted"),
        "HS256 keyed with the public key": (
            hs256_with(rsa.public_pem(), claims(), kid="rsa-1"),
            "Token algorithm 'HS256' is not accepted",
        ),
        "RS384 not configured": (rsa.token(claims(), alg="RS384"), "Token algorithm 'RS384'"),
        "ES256 with the RSA key's kid": (
            s["ES256"].token(claims(), kid="rsa-1"),
            "Token algorithm ES256 does not match its key",
        ),
        "another key, known kid": (s["other"].token(claims()), "Token signature invalid"),
        "payload swapped": (
            f"{head}.{b64(json.dumps(claims(role='admin')).encode())}.{sig}",
            "Token signature invalid",
        ),
        "no signature": (f"{head}.{good.split('.')[1]}.", "Token signature invalid"),
        "unknown kid": (rsa.token(claims(), kid="nope"), "Token signed by an unknown key"),
        "kid not a string": (
            f"{b64(json.dumps({'alg': 'RS256', 'kid': 7}).encode())}.{good.split('.', 1)[1]}",
            "Malformed token",  # PyJWT checks the header's kid
        ),
    }


@pytest.mark.parametrize(
    "attack",
    [
        "bad base64",
        "bad json",
        "header not an object",
        "expired",
        "nbf in the future",
        "iat in the future",
        "wrong issuer",
        "wrong audience",
        "no exp",
        "no aud",
        "no sub",
        "alg none",
        "HS256 keyed with the public key",
        "RS384 not configured",
        "ES256 with the RSA key's kid",
        "another key, known kid",
        "payload swapped",
        "no signature",
        "unknown kid",
        "kid not a string",
    ],
)
async def test_attacks_are_refused(tmp_path: Path, signers: dict[str, Signer], attack: str) -> None:
    verifier = _verifier(tmp_path, signers)
    token, detail = _attacks(signers)[attack]
    assert verifier.claims(token)
    with pytest.raises(AuthenticationError, match=detail) as refused:
        await verifier.authenticate(token)
    assert refused.value.status_code == 401


async def test_leeway_admits_a_little_clock_skew(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    verifier = _verifier(tmp_path, signers)
    now, rsa = int(time.time()), signers["RS256"]
    assert await verifier.authenticate(rsa.token(claims(exp=now - 5, nbf=now + 5)))


async def test_the_key_fixes_the_algorithm(tmp_path: Path, signers: dict[str, Signer]) -> None:
    """A key whose JWK names its `alg` verifies only that algorithm, even one configured."""
    jwks = {"keys": [signers["RS256"].jwk(alg="RS384")]}
    verifier = _verifier(
        tmp_path, signers, jwks_file=_file(tmp_path, jwks), algorithms=["RS256", "RS384"]
    )
    with pytest.raises(AuthenticationError, match="Token algorithm RS256 does not match its key"):
        await verifier.authenticate(signers["RS256"].token(claims()))
    assert await verifier.authenticate(signers["RS256"].token(claims(), alg="RS384"))


async def test_a_token_without_kid_needs_a_single_key(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    token = signers["ES256"].token(claims(), kid=None)
    with pytest.raises(AuthenticationError, match="unknown key"):
        await _verifier(tmp_path, signers).authenticate(token)
    single = _file(tmp_path, {"keys": [signers["ES256"].jwk()]})
    assert await _verifier(tmp_path, signers, jwks_file=single).authenticate(token)


# ------------------------------------------------------------------------ claims to users
async def test_roles_from_a_list_claim(tmp_path: Path, signers: dict[str, Signer]) -> None:
    verifier = _verifier(tmp_path, signers, claims={"role": "realm_access.roles"})
    token = signers["RS256"].token(
        claims(role=None, realm_access={"roles": ["offline_access", "viewer", "admin"]})
    )
    assert (await verifier.authenticate(token)).role == "viewer"  # the first known role


@pytest.mark.parametrize("role", [None, "owner", ["owner", 3]])
async def test_no_known_role_is_forbidden_unless_defaulted(
    tmp_path: Path, signers: dict[str, Signer], role: Any
) -> None:
    token = signers["RS256"].token(claims(role=role))
    with pytest.raises(Forbidden, match="Token grants no Keel role: its 'role' claim names none"):
        await _verifier(tmp_path, signers).authenticate(token)
    defaulted = _verifier(tmp_path, signers, default_role="viewer")
    assert (await defaulted.authenticate(token)).role == "viewer"


@pytest.mark.parametrize("org", [None, "", 7, ["a", "b"]])
async def test_no_single_org_is_forbidden_unless_defaulted(
    tmp_path: Path, signers: dict[str, Signer], org: Any
) -> None:
    token = signers["RS256"].token(claims(org=org))
    with pytest.raises(Forbidden, match=r"Token (has no 'org' claim|claim 'org' must name one)"):
        await _verifier(tmp_path, signers).authenticate(token)
    if org is None:
        defaulted = _verifier(tmp_path, signers, default_org="solo")
        assert (await defaulted.authenticate(token)).org == "solo"


async def test_claim_names_are_configured(tmp_path: Path, signers: dict[str, Signer]) -> None:
    names = {"identity": "email", "org": "https://keel.test/org", "display_name": "nick"}
    verifier = _verifier(tmp_path, signers, claims=names)
    token = signers["RS256"].token(
        {**claims(org=None, email="a@x.test", nick="Al"), "https://keel.test/org": ["acme"]}
    )
    user = await verifier.authenticate(token)
    assert (user.identity, user.org, user.display_name) == ("a@x.test", "acme", "Al")
    with pytest.raises(AuthenticationError, match="Token lacks the 'email' claim"):
        await verifier.authenticate(signers["RS256"].token(claims()))


async def test_require_adds_claims(tmp_path: Path, signers: dict[str, Signer]) -> None:
    verifier = _verifier(tmp_path, signers, require=["jti"])
    with pytest.raises(AuthenticationError, match="Token lacks the 'jti' claim"):
        await verifier.authenticate(signers["RS256"].token(claims()))
    assert await verifier.authenticate(signers["RS256"].token(claims(jti="j1")))


# ----------------------------------------------------------------------------- the caches
async def test_verified_tokens_are_cached_until_ttl_or_exp(
    tmp_path: Path, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(monkeypatch)
    verifier = _verifier(tmp_path, signers, token_cache_seconds=60)
    token = signers["EdDSA"].token(claims())
    first = await verifier.authenticate(token)
    assert await verifier.authenticate(token) is first
    clock.advance(61)
    again = await verifier.authenticate(token)
    assert again is not first and again.identity == first.identity
    short = signers["EdDSA"].token(claims(exp=int(clock.at) + 10))
    user = await verifier.authenticate(short)
    clock.advance(11)  # past exp, before the TTL: verified again (PyJWT's own clock says valid)
    assert await verifier.authenticate(short) is not user


async def test_jwks_url_is_fetched_once_and_refreshed_when_stale(
    tmp_path: Path,
    signers: dict[str, Signer],
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(monkeypatch)
    verifier = _verifier(
        tmp_path, signers, jwks_file=None, jwks_url=jwks_server.url, token_cache_seconds=0
    )
    for alg in ("RS256", "ES256", "EdDSA", "RS256"):
        await verifier.authenticate(signers[alg].token(claims()))
    assert jwks_server.fetches == 1
    clock.advance(301)
    await verifier.authenticate(signers["RS256"].token(claims()))
    assert jwks_server.fetches == 2


async def test_unknown_kid_refetches_at_most_once_per_interval(
    tmp_path: Path,
    signers: dict[str, Signer],
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(monkeypatch)
    verifier = _verifier(
        tmp_path, signers, jwks_file=None, jwks_url=jwks_server.url, jwks_refetch_seconds=30
    )
    await verifier.authenticate(signers["RS256"].token(claims()))
    # The provider rotates in a new key: its first token makes Keel fetch the JWKS again.
    rotated = Signer("ES256", "ec-2")
    jwks_server.keys.append(rotated.jwk())
    assert (await verifier.authenticate(rotated.token(claims()))).identity == "alice"
    assert jwks_server.fetches == 2
    # Unknown kids: one refetch per interval, whatever the attacker sends, even all at once.
    forged = [signers["other"].token(claims(), kid=f"k{i}") for i in range(20)]
    clock.advance(31)
    outcomes = await asyncio.gather(
        *(verifier.authenticate(t) for t in forged), return_exceptions=True
    )
    assert all(isinstance(o, AuthenticationError) for o in outcomes)
    assert jwks_server.fetches == 3
    clock.advance(29)
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.authenticate(forged[0])
    assert jwks_server.fetches == 3
    clock.advance(2)
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.authenticate(forged[0])
    assert jwks_server.fetches == 4


async def test_jwks_down_at_first_use_is_503_and_known_keys_outlive_an_outage(
    tmp_path: Path,
    signers: dict[str, Signer],
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(monkeypatch)
    verifier = _verifier(
        tmp_path, signers, jwks_file=None, jwks_url=jwks_server.url, token_cache_seconds=0
    )
    token = signers["RS256"].token(claims())
    jwks_server.failing = True
    with pytest.raises(Unavailable, match="keys could not be fetched"):
        await verifier.authenticate(token)
    clock.advance(31)  # the next attempt waits out the refetch interval
    jwks_server.failing = False
    assert await verifier.authenticate(token)
    jwks_server.failing = True
    clock.advance(301)  # stale, and the provider is down: the keys known still verify
    assert await verifier.authenticate(token)
    assert await verifier.authenticate(token)
    assert jwks_server.fetches == 3  # one failed, one good, one failed: not one per request


async def test_unreachable_jwks_url_is_503(tmp_path: Path, signers: dict[str, Signer]) -> None:
    from tests.support.server import free_port

    url = f"http://127.0.0.1:{free_port()}/jwks"  # nothing listens there
    verifier = _verifier(tmp_path, signers, jwks_file=None, jwks_url=url, jwks_timeout_seconds=5)
    with pytest.raises(Unavailable):
        await verifier.authenticate(signers["RS256"].token(claims()))


# --------------------------------------------------------------------- API keys beside JWT
class OpaqueKeys:
    """Stands in for keel.auth.keys (another branch): claims `keel_...` keys."""

    def claims(self, token: str) -> bool:
        return token.startswith("keel_")

    async def authenticate(self, token: str) -> User:
        if token != "keel_good":
            raise AuthenticationError("Invalid API key")
        return User("key-user", org="acme", role="member")


def _credentials(**headers: str) -> Credentials:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    return Credentials(method="GET", path="/threads", headers=raw)


@pytest.mark.parametrize("jwt_first", [True, False])
async def test_each_credential_goes_to_its_authenticator(
    tmp_path: Path, signers: dict[str, Signer], jwt_first: bool
) -> None:
    verifier = _verifier(tmp_path, signers)
    keys = OpaqueKeys()
    settings = AuthSettings(api_keys=True, jwt={"issuer": ISSUER})
    guard = Guard(settings, authenticators=[verifier, keys] if jwt_first else [keys, verifier])
    token = signers["ES256"].token(claims("jo"))
    got = guard.authenticate
    assert (await got(_credentials(authorization=f"Bearer {token}"))).identity == "jo"
    assert (await got(_credentials(authorization="Bearer keel_good"))).identity == "key-user"
    assert (await got(_credentials(**{"x-api-key": "keel_good"}))).identity == "key-user"
    for bad in ("keel_bad", "garbage", "two.segments", unsigned(claims())):
        with pytest.raises(AuthenticationError):
            await got(_credentials(authorization=f"Bearer {bad}"))


@pytest.mark.parametrize(
    ("token", "claimed"),
    [
        ("eyJh.eyJz.c2ln", True),
        ("eyJh.eyJz.", True),
        ("keel_0123456789abcdef", False),
        ("sk-abc", False),
        ("two.segments", False),
        ("a.b.c.d", False),
        ("a!.b.c", False),
        ("", False),
    ],
)
def test_what_looks_like_a_jwt(tmp_path: Path, token: str, claimed: bool) -> None:
    config = jwt_config({"issuer": "i", "audience": "a", "jwks_url": "https://x/j"}, tmp_path)
    assert JwtAuthenticator(config).claims(token) is claimed
