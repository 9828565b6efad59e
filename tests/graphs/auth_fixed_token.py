"""A project's custom auth for tests: `Authorization: Bearer keel-test-token` is the user
`tester`, anything else is refused (401); every resource but the store is owner-only (the
documented owner-filter pattern: stamp `owner` into the metadata, filter on it)."""

from typing import Any

from langgraph_sdk import Auth

TOKEN = "keel-test-token"
IDENTITY = "tester"

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    if authorization != f"Bearer {TOKEN}":
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    return {"identity": IDENTITY}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    if ctx.resource == "store":
        return None
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        if isinstance(metadata, dict):
            metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
