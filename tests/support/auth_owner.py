"""The reference's classic owner-only auth, for tests: a bearer token is the user's name (among
USERS); every handler stamps `owner` into the value's metadata and filters on it."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

USERS = {"alice", "bob", "carol"}

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> dict[str, Any]:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Unknown user")
    return {"identity": token, "permissions": [f"team:{token}"], "tier": "gold"}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    owner = {"owner": ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata.update(owner)
    return owner
