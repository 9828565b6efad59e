"""An `@auth.authenticate` for tests of organisations: the user is whoever the request's
`x-test-user` header names, in the organisation `x-test-org`, with the built-in role
`x-test-role` (default member) and, given `x-test-key`, as if authenticated by that API key
(`key_id`). Until built-in API keys exist, this is how tests put users in organisations (with
`"api_keys": true` in the config, organisations are on)."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> dict[str, Any]:
    user = headers.get(b"x-test-user")
    if not user:
        raise Auth.exceptions.HTTPException(status_code=401, detail="No x-test-user header")
    out: dict[str, Any] = {
        "identity": user.decode(),
        "org": headers[b"x-test-org"].decode() if b"x-test-org" in headers else None,
        "role": headers.get(b"x-test-role", b"member").decode(),
    }
    if b"x-test-key" in headers:
        out["key_id"] = headers[b"x-test-key"].decode()
    return out
