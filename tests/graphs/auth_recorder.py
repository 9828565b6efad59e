"""An `Auth` whose one `@auth.on` handler allows everything and appends each call to the file
named by KEEL_TEST_AUTH_RECORD: a test proves a refused request reached no protected code by
finding nothing new there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.on
async def record(ctx: Auth.types.AuthContext, value: Any) -> None:
    path = os.environ.get("KEEL_TEST_AUTH_RECORD")
    if path:
        _append(Path(path), f"{ctx.user.identity} {ctx.resource}.{ctx.action}\n")


def _append(path: Path, line: str) -> None:
    with path.open("a") as out:
        out.write(line)
