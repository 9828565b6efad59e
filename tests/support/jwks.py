"""An OIDC provider for tests: signing keys made here (RSA, EC P-256, Ed25519), tokens signed with
them (and forged ones: `alg: none`, HS256 keyed with the public key), and a JWKS served over
real HTTP on a free 127.0.0.1 port, counting its fetches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://idp.test"
AUDIENCE = "keel"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """One signing key of the provider, with its `kid`."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        self.private: PrivateKey
        if alg.startswith(("RS", "PS")):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        data = jwt.get_algorithm_by_name(self.alg).to_jwk(self.public(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", **extra}

    def public(self) -> Any:
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return bytes(
            self.public().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(self, claims: dict[str, Any], *, kid: str | None = "", alg: str | None = None) -> str:
        """`claims` signed by this key (`kid` "" = its own, None = no kid header)."""
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


def claims(
    sub: str | None = "alice", org: Any = "acme", role: Any = "member", **extra: Any
) -> dict[str, Any]:
    """Valid claims for an hour: issuer, audience, times, identity, org and role."""
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 3600,
        "name": sub and sub.title(),
    }
    if org is not None:
        out["org"] = org
    if role is not None:
        out["role"] = role
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def unsigned(payload: dict[str, Any], **header: Any) -> str:
    """An `alg: none` token (empty signature)."""
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with(secret: bytes, payload: dict[str, Any], **header: Any) -> str:
    """An HS256 token keyed with `secret` (say, a public key's PEM): the RS/HS confusion."""
    head = {"alg": "HS256", "typ": "JWT", **header}
    signing = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(mac)}"


class JwksServer:
    """Serves `{"keys": [...]}` at /jwks from a thread; `fetches` counts the GETs; `failing`
    makes it answer 500."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.fetches += 1
                    status = 500 if server.failing else 200
                    body = json.dumps({"keys": server.keys}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
