"""A project's `langgraph_sdk.Auth` for assistants, crons, threads and the store (tests/e2e/
test_auth_resources.py, test_auth_store.py): bearer tokens name users.

Users without an organisation get the reference's custom-auth patterns: what they create is
stamped with their name (`metadata.owner`) and only they see it; store namespaces are rewritten
to start with their name. Special users exercise the other outcomes: `echo` gets a 418 whose
detail is the handler's value (to compare the values with the reference's), `mallory` may not
delete assistants (403), assistants with `metadata.shared` are everyone's to read, `auditor`
searches every cron, `picky` finds only public store items, `dotty` rewrites store namespaces
into an invalid one.

Users with an organisation (`ORGS`: for a server with built-in auth on, `"api_keys": true`) pass
the handlers untouched, so only the organisation boundary applies; `sly` rewrites namespaces
into another organisation's reserved label.
"""

from __future__ import annotations

import json
from typing import Any

from langgraph_sdk import Auth

auth = Auth()
ORGS = {
    "ann": {"org": "acme", "role": "member"},
    "ada": {"org": "acme", "role": "admin"},
    "vic": {"org": "acme", "role": "viewer"},
    "sly": {"org": "acme", "role": "member"},
    "gus": {"org": "globex", "role": "member"},
    "nobody": {"role": "member"},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> dict[str, Any]:
    scheme, _, name = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not name:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing token")
    return {"identity": name, **ORGS.get(name, {})}


def _echo(ctx: Auth.types.AuthContext, value: Any) -> Any:
    detail = json.dumps({"action": ctx.action, "value": value}, default=str, sort_keys=True)
    raise Auth.exceptions.HTTPException(status_code=418, detail=detail)


def _owned(ctx: Auth.types.AuthContext, value: Any) -> Any:
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads
async def threads(ctx: Auth.types.AuthContext, value: Any) -> Any:
    if ctx.user.identity in ORGS:
        return None
    return _owned(ctx, value)


@auth.on.assistants
async def assistants(ctx: Auth.types.AuthContext, value: Any) -> Any:
    who = ctx.user.identity
    if who in ORGS:
        return None
    if who == "echo":
        return _echo(ctx, value)
    if who == "mallory" and ctx.action == "delete":
        return False
    owned = _owned(ctx, value)
    if ctx.action == "read":  # shared assistants are everyone's to read (and run)
        return {"$or": [owned, {"shared": True}]}
    return owned


@auth.on.crons
async def crons(ctx: Auth.types.AuthContext, value: Any) -> Any:
    who = ctx.user.identity
    if who in ORGS:
        return None
    if who == "echo":
        return _echo(ctx, value)
    if who == "auditor" and ctx.action == "search":
        return None
    return _owned(ctx, value)


@auth.on.store
async def store(ctx: Auth.types.AuthContext, value: Any) -> Any:
    who = ctx.user.identity
    if who == "sly":
        value["namespace"] = ("keel:org:globex", *(value["namespace"] or ()))
        return None
    if who in ORGS:
        return None
    if who == "echo":
        return _echo(ctx, value)
    if who == "dotty":
        value["namespace"] = ("bad.label",)
        return None
    value["namespace"] = (who, *(value["namespace"] or ()))
    if who == "picky":
        return {"public": True}
    return None
