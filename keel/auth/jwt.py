"""JWT bearer tokens from any OIDC provider (`auth.jwt`).

A token is verified by PyJWT against the provider's JWKS (a URL, fetched and cached, refetched
on an unknown `kid` at most once per `jwks_refetch_seconds`; or a file read at start). Only
asymmetric algorithms are accepted, each only with a key of its own type: no `none`, no HS256
signed with a public key. A verified token becomes a `User` (identity, org, built-in role) and is
kept until it expires or `token_cache_seconds` pass, so a repeated token costs a dict look-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt

from keel import clock
from keel.auth import roles
from keel.auth.user import AuthenticationError, User
from keel.errors import ConfigError, Forbidden, Unavailable

log = logging.getLogger("keel.auth")

# The asymmetric algorithms Keel verifies, with the key type (and curves) each must be used with.
KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{f"{p}{n}": ("RSA", None) for p in ("RS", "PS") for n in (256, 384, 512)},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
KEYS = {
    "issuer",
    "audience",
    "jwks_url",
    "jwks_file",
    "algorithms",
    "leeway_seconds",
    "jwks_cache_seconds",
    "jwks_refetch_seconds",
    "jwks_timeout_seconds",
    "token_cache_seconds",
    "claims",
    "default_role",
    "default_org",
    "require",
}
CLAIMS = {"identity": "sub", "org": "org", "role": "role", "display_name": "name"}
ALWAYS_REQUIRED = ("exp", "iss", "aud")  # and the identity claim
# Three base64url segments (the last, the signature, may be empty: how `alg: none` looks).
TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
TOKEN_CACHE_SIZE = 10_000


@dataclasses.dataclass(frozen=True)
class JwtConfig:
    issuer: str
    audience: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0
    jwks_refetch_seconds: float = 30.0
    jwks_timeout_seconds: float = 5.0
    token_cache_seconds: float = 60.0
    claims: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(CLAIMS))
    default_role: str | None = None
    default_org: str | None = None
    require: tuple[str, ...] = ()


# --------------------------------------------------------------------------- configuration
def jwt_config(raw: Mapping[str, Any], base_dir: Path) -> JwtConfig:
    """`auth.jwt` checked at start: every mistake is a ConfigError naming its key."""
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"auth.jwt: unsupported keys {unknown}; supported: {sorted(KEYS)}")
    url, path = raw.get("jwks_url"), raw.get("jwks_file")
    if (url is None) == (path is None):
        raise ConfigError("auth.jwt needs exactly one of 'jwks_url' and 'jwks_file'")
    if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise ConfigError("auth.jwt.jwks_url must be an http(s) URL")
    if path is not None and not isinstance(path, str):
        raise ConfigError("auth.jwt.jwks_file must be a path (relative to the config file)")
    return JwtConfig(
        issuer=_text(raw.get("issuer"), "issuer"),
        audience=_texts(raw.get("audience"), "audience"),
        jwks_url=url,
        jwks_file=None if path is None else base_dir / path,
        algorithms=_algorithms(raw.get("algorithms", list(DEFAULT_ALGORITHMS))),
        leeway_seconds=_number(raw, "leeway_seconds", 30, 0, 300),
        jwks_cache_seconds=_number(raw, "jwks_cache_seconds", 300, 1, 86_400),
        jwks_refetch_seconds=_number(raw, "jwks_refetch_seconds", 30, 1, 86_400),
        jwks_timeout_seconds=_number(raw, "jwks_timeout_seconds", 5, 0.1, 60),
        token_cache_seconds=_number(raw, "token_cache_seconds", 60, 0, 3600),
        claims=_claims(raw.get("claims", {})),
        default_role=_default_role(raw.get("default_role")),
        default_org=None
        if raw.get("default_org") is None
        else _text(raw["default_org"], "default_org"),
        require=_texts(raw.get("require", []), "require", empty=True),
    )


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"auth.jwt.{key} must be a non-empty string")
    return value


def _texts(value: Any, key: str, empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if not ok or (not value and not empty):
        raise ConfigError(f"auth.jwt.{key} must be a string or a list of strings")
    return tuple(value)


def _algorithms(value: Any) -> tuple[str, ...]:
    algorithms = _texts(value, "algorithms")
    for alg in algorithms:
        if alg.upper().startswith("HS") or alg.lower() == "none":
            raise ConfigError(
                f"auth.jwt.algorithms: {alg!r} is refused: Keel verifies only asymmetric "
                "signatures from the provider's public keys (RS256, ES256, EdDSA, ...)"
            )
        if alg not in KEY_TYPES:
            raise ConfigError(f"auth.jwt.algorithms: {alg!r} is not one of {sorted(KEY_TYPES)}")
    return algorithms


def _number(raw: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"auth.jwt.{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _claims(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) - set(CLAIMS):
        raise ConfigError(f"auth.jwt.claims must be an object with keys among {sorted(CLAIMS)}")
    return {
        name: _text(value.get(name, default), f"claims.{name}") for name, default in CLAIMS.items()
    }


def _default_role(value: Any) -> str | None:
    if value is not None and value not in roles.ROLES:
        raise ConfigError(f"auth.jwt.default_role must be one of {', '.join(roles.ROLES)}")
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------- keys
def usable_keys(data: Any) -> dict[str | None, dict[str, Any]]:
    """The asymmetric signing keys of a JWKS document, by `kid`. Symmetric (`oct`) keys,
    encryption keys and keys PyJWT cannot load are left out."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document (an object with a 'keys' list)")
    keys: dict[str | None, dict[str, Any]] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        alg = next((a for a in KEY_TYPES if _fits(jwk, a)), None)
        if alg is None:
            continue
        try:
            jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError as exc:
            log.warning("JWKS: key %r left out: %s", jwk.get("kid"), exc)
            continue
        kid = jwk.get("kid")
        keys[kid if isinstance(kid, str) else None] = jwk
    if not keys:
        raise ValueError("the JWKS has no usable asymmetric signing key")
    return keys


def _fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether `alg` may be verified with `jwk`: its key type (and curve), and its own `alg`."""
    kty, curves = KEY_TYPES[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        return False
    return jwk.get("alg") in (None, alg)


class KeySet:
    """The provider's public keys: from a file (read once), or a URL (fetched when first needed,
    again after `jwks_cache_seconds`, and on an unknown `kid` at most once per
    `jwks_refetch_seconds`; a failed fetch keeps the keys already known)."""

    def __init__(self, config: JwtConfig) -> None:
        self.url = config.jwks_url
        self.cache_seconds = config.jwks_cache_seconds
        self.refetch_seconds = config.jwks_refetch_seconds
        self.timeout = config.jwks_timeout_seconds
        self.keys: dict[str | None, dict[str, Any]] = {}
        self.fetches = 0  # attempts, for tests and logs
        self._valid_until = -math.inf  # when the keys should be fetched again
        self._refetched = -math.inf  # the last unknown-kid refetch
        self._built: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._lock = asyncio.Lock()
        if config.jwks_file is not None:
            self.keys = _read_file(config.jwks_file)

    async def key(self, kid: Any, alg: str) -> jwt.PyJWK:
        """The key that verifies a token of this header, or AuthenticationError."""
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("Invalid token: 'kid' must be a string")
        if self.url is not None and self._valid_until <= clock.now():
            await self._refresh(None)
        jwk = self._find(kid)
        if jwk is None and kid is not None and self.url is not None:
            await self._refresh(kid)
            jwk = self._find(kid)
        if not self.keys:
            raise Unavailable("The token issuer's keys could not be fetched")
        if jwk is None:
            raise AuthenticationError("Token signed by an unknown key")
        if not _fits(jwk, alg):
            raise AuthenticationError(f"Token algorithm {alg} does not match its key")
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = self._built[(kid, alg)] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise AuthenticationError("Token signed by an unusable key") from None
        return built

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:  # a token without `kid`: only when there is a single key to choose
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    async def _refresh(self, kid: str | None) -> None:
        """Fetch the JWKS: because it is stale (`kid` None) or lacks `kid`; one fetch at a time,
        and a request that waited for another's fetch does not fetch again."""
        async with self._lock:
            now = clock.now()
            if kid is None and self._valid_until > now:
                return
            if kid is not None:
                if kid in self.keys or now - self._refetched < self.refetch_seconds:
                    return
                self._refetched = now
            await self._fetch(now)

    async def _fetch(self, now: float) -> None:
        assert self.url is not None
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"accept": "application/json"})
                response.raise_for_status()
                keys = usable_keys(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            # Keep what is known; fetch again (for any reason) only after the refetch
            # interval: the provider is not hammered by every request while it is down.
            self._refetched = now
            self._valid_until = now + self.refetch_seconds
            log.warning("JWKS %s could not be fetched: %s", self.url, exc)
            return
        self.keys, self._built = keys, {}
        self._valid_until = now + self.cache_seconds


def _read_file(path: Path) -> dict[str | None, dict[str, Any]]:
    try:
        return usable_keys(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"auth.jwt.jwks_file {str(path)!r}: {exc}") from exc


# -------------------------------------------------------------------------- authenticator
REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "Token expired"),
    (jwt.ImmatureSignatureError, "Token not yet valid"),
    (jwt.InvalidIssuerError, "Token issuer not accepted"),
    (jwt.InvalidAudienceError, "Token audience not accepted"),
    (jwt.InvalidSignatureError, "Token signature invalid"),
    (jwt.InvalidAlgorithmError, "Token algorithm not accepted"),
    (jwt.DecodeError, "Malformed token"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"Token lacks the '{exc.claim}' claim"
    for kind, reason in REASONS:
        if isinstance(exc, kind):
            return reason
    return f"Invalid token: {exc}"


def claim(payload: Mapping[str, Any], name: str) -> Any:
    """A claim by name; a dotted name not found as such walks nested objects
    (`realm_access.roles`), so namespaced claims (`https://example.com/org`) work too."""
    if name in payload:
        return payload[name]
    value: Any = payload
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class JwtAuthenticator:
    """The `Authenticator` (keel.auth.guard) of bearer tokens that look like JWTs."""

    def __init__(self, config: JwtConfig, keys: KeySet | None = None) -> None:
        self.config = config
        self.keys = keys or KeySet(config)
        self._require = [*ALWAYS_REQUIRED, *config.require]
        self._cache: OrderedDict[str, tuple[float, User]] = OrderedDict()

    def claims(self, token: str) -> bool:
        return TOKEN.fullmatch(token) is not None

    async def authenticate(self, token: str) -> User:
        now = clock.now()
        hit = self._cache.get(token)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._cache[token]
        payload = await self.verify(token)
        user = self.user(payload)
        ttl = self.config.token_cache_seconds
        until = min(float(payload["exp"]), now + ttl)
        if ttl > 0 and until > now:
            self._cache[token] = (until, user)
            if len(self._cache) > TOKEN_CACHE_SIZE:
                self._cache.popitem(last=False)
        return user

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, algorithm, issuer, audience and times hold."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("Malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.config.algorithms:
            raise AuthenticationError(f"Token algorithm {str(alg)[:20]!r} is not accepted")
        key = await self.keys.key(header.get("kid"), alg)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(self.config.audience),
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": self._require},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from None
        return payload

    def user(self, payload: Mapping[str, Any]) -> User:
        """The user verified claims describe; 401 without an identity, 403 without an
        organisation or a known role (the token is genuine but grants nothing in Keel)."""
        names = self.config.claims
        identity = claim(payload, names["identity"])
        if isinstance(identity, bool) or not isinstance(identity, (str, int)) or identity == "":
            raise AuthenticationError(f"Token lacks the '{names['identity']}' claim")
        role = self._role(payload)
        name = claim(payload, names["display_name"])
        return User(
            str(identity),
            display_name=name if isinstance(name, str) else None,
            permissions=sorted(roles.permissions(role)),
            org=self._org(payload),
            role=role,
            fields={"claims": dict(payload)},
        )

    def _org(self, payload: Mapping[str, Any]) -> str:
        name = self.config.claims["org"]
        value = claim(payload, name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None and self.config.default_org is not None:
            return self.config.default_org
        if value is None:
            raise Forbidden(f"Token has no '{name}' claim: every Keel user belongs to an org")
        if not isinstance(value, str) or not value:
            raise Forbidden(f"Token claim '{name}' must name one organisation")
        return value

    def _role(self, payload: Mapping[str, Any]) -> str:
        name = self.config.claims["role"]
        value = claim(payload, name)
        named: Sequence[Any] = (
            [value] if isinstance(value, str) else value if isinstance(value, list) else []
        )
        role = next((r for r in named if isinstance(r, str) and r in roles.ROLES), None)
        role = role or self.config.default_role
        if role is None:
            raise Forbidden(
                f"Token grants no Keel role: its '{name}' claim names none of "
                + ", ".join(roles.ROLES)
            )
        return role


def authenticator(raw: Mapping[str, Any] | None, base_dir: Path) -> JwtAuthenticator | None:
    """The JWT authenticator `auth.jwt` asks for (None without it); the JWKS file is read now."""
    return None if raw is None else JwtAuthenticator(jwt_config(raw, base_dir))
