"""`GET /console` (and `/console/<asset>`): the web console's static files, from the package.

The files hold no data, so they are served without authentication (keel/http/auth.py
CONSOLE_PREFIX); every data call the console makes goes through the public API and its auth.
Off with `http.disable_console` (then 404)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from keel.console import STATIC
from keel.errors import NotFound

router = APIRouter(tags=["console"], include_in_schema=False)

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The files change with the package version only, but a browser must not keep an old app.js
# beside a new index.html after an upgrade: revalidate each time (a 304 is cheap). The page holds
# a credential: it runs only its own scripts, talks only to this server and is never framed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
}


def asset(relative: str) -> Path:
    """The static file at `relative`, or NotFound (no escaping the folder, no unknown types)."""
    root = STATIC.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in TYPES:
        raise NotFound(f"no console file {relative!r}")
    return path


@router.get("/console")
async def console_root() -> Any:
    return RedirectResponse("console/", status_code=307)


@router.get("/console/")
async def console_index() -> Any:
    return FileResponse(asset("index.html"), media_type=TYPES[".html"], headers=HEADERS)


@router.get("/console/{relative:path}")
async def console_asset(relative: str) -> Any:
    path = asset(relative)
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)
