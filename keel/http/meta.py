"""Meta routes: health and server info."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request

from keel import __version__

from .deps import query_bool, services
from .responses import JSON

router = APIRouter(tags=["meta"])


@router.get("/ok")
@router.get("/")
async def ok(request: Request) -> Any:
    if query_bool(request, "check_db"):
        await services(request).storage.ping(within=2.0)
    return JSON({"ok": True})


@router.get("/info")
async def info(request: Request) -> Any:
    return JSON(
        {
            "version": __version__,
            "server": "keel",
            "langgraph_py_version": version("langgraph"),
            "flags": {"assistants": True, "crons": True, "langsmith": False},
            "host": {"kind": "self-hosted", "database": services(request).storage.dialect.name},
        }
    )
