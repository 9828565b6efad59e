"""A project's `langgraph_sdk.Auth` as the reference documents it (for tests/e2e/test_auth_http.py):
bearer tokens name users; every resource a user creates is stamped with its owner and only the
owner sees it. Special users exercise the other handler outcomes."""

from __future__ import annotations

import json
from typing import Any

from langgraph_sdk import Auth

auth = Auth()
USERS = {"tok-alice": "alice", "tok-bob": "bob", "tok-reader": "reader", "tok-odd": "odd"}


@auth.authenticate
async def authenticate(
    authorization: str | None, headers: dict[bytes, bytes], method: str, body: Any = None
) -> dict[str, Any]:
    # The reference lists `body` but never passes it (hence the default); Keel passes the
    # request's JSON body.
    if not authorization:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    if headers.get(b"x-banned") == b"yes":
        raise Auth.exceptions.HTTPException(status_code=403, detail="Banned")
    if method == "POST" and "forbidden-word" in json.dumps(body):
        raise Auth.exceptions.HTTPException(status_code=403, detail="Body refused")
    return {"identity": USERS[token], "team": "blue", "permissions": ["threads:write"]}


@auth.on.threads.delete
async def only_owners_delete(ctx: Auth.types.AuthContext, value: Any) -> Any:
    if ctx.user.identity == "reader":
        return False
    return {"owner": ctx.user.identity}


@auth.on.assistants.search
async def odd_search(ctx: Auth.types.AuthContext, value: Any) -> Any:
    if ctx.user.identity == "odd":
        return "not a filter"
    return None


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: Any) -> Any:
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
