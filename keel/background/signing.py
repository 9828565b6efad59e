"""Standard Webhooks signatures (https://www.standardwebhooks.com): every attempt carries
`webhook-id` (the same on every attempt of a delivery), `webhook-timestamp` (integer seconds)
and, when `webhooks.secret` is set, `webhook-signature: v1,<base64 HMAC-SHA256>` over
`<id>.<timestamp>.<body>` with the secret's key (`whsec_` + base64 of the key bytes, decoded by
`keel.settings.webhooks.secret_key`)."""

from __future__ import annotations

import base64
import hashlib
import hmac


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
