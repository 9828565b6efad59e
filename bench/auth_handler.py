"""The project auth of the auth benchmark (bench/auth.py), given unchanged to Keel and to
`langgraph dev`: one fixed bearer token is the user `bench`, and every resource is owner-only
(the documented pattern: `@auth.on` stamps `owner` into the metadata and filters on it)."""

from typing import Any

from langgraph_sdk import Auth

TOKEN = "keel-bench-token"

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    if authorization != f"Bearer {TOKEN}":
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    return {"identity": "bench"}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        if isinstance(metadata, dict):
            metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
