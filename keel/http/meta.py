"""Meta routes: health and server info.

`health` (`/ok`) is never replaced by a custom app (`http.app`); `router` (`/`, `/info`) may be.
With `http.disable_meta`, only `disabled` is served: a plain `/ok` (no database check), which a
custom app may replace, as in the reference.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request

from keel import __version__

from .deps import query_bool, services
from .responses import JSON

health = APIRouter(tags=["meta"])
router = APIRouter(tags=["meta"])
disabled = APIRouter(tags=["meta"])


@health.get("/ok")
async def ok(request: Request) -> Any:
    if query_bool(request, "check_db"):
        await services(request).storage.ping(within=2.0)
    return JSON({"ok": True})


router.add_api_route("/", ok, methods=["GET"])


@router.get("/info")
async def info(request: Request) -> Any:
    s = services(request)
    # Keel's: `workspaces`, GET /threads/{id}/workspace is served (a `sandbox` section);
    # `metrics`, GET /metrics is; `workers`, GET /keel/workers and /keel/threads/{id}/runs are.
    # The console asks before calling them.
    flags = {"assistants": True, "crons": True, "langsmith": False}
    flags["workspaces"] = s.sandboxes is not None and s.settings.http.enabled("threads")
    flags["metrics"] = s.metrics.enabled
    flags["workers"] = s.settings.http.enabled("runs")
    return JSON(
        {
            "version": __version__,
            "server": "keel",
            "langgraph_py_version": version("langgraph"),
            "flags": flags,
            "host": {"kind": "self-hosted", "database": s.storage.dialect.name},
        }
    )


@disabled.get("/ok")
async def ok_plain() -> Any:
    return JSON({"ok": True})
