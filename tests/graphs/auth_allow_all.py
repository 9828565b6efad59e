"""A project's `@auth.on` handler that allows everything (tests/e2e/test_tenancy_fuzz.py): only
Keel's organisation boundary stands between two organisations."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.on
async def allow_everything(ctx: Auth.types.AuthContext, value: Any) -> bool:
    return True
