"""Standard Webhooks signatures (https://www.standardwebhooks.com): every attempt carries
`webhook-id` (the same on every attempt of a delivery), `webhook-timestamp` (integer seconds)
and, when `webhooks.secret` is set, `webhook-signature: v1,<base64 HMAC-SHA256>` over
`<id>.<timestamp>.<body>` with the secret's key (`whsec_` + base64 of the key bytes)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from keel.errors import ConfigError

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (the prefix is optional)."""
    text = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("webhooks.secret must be 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise ConfigError("webhooks.secret: the key must be at least 16 bytes (24 base64 chars)")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (no signature without a key)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        out["webhook-signature"] = sign(key, msg_id, timestamp, body)
    return out
