"""`GET /threads/{tid}/workspace` and `GET /threads/{tid}/workspace/{path}`: a thread's sandbox
workspace, read-only (Keel's own: the reference has no workspaces). Readable by whoever may
read the thread; docs/sandbox.md, "Workspaces over HTTP"."""

from __future__ import annotations

import asyncio
import mimetypes
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from keel.errors import NotFound
from keel.sandbox import Sandbox, browse

from .deps import check_uuid, query_list, services
from .responses import JSON
from .threads import _svc

router = APIRouter(tags=["threads"])
NOT_CONFIGURED = "the sandbox is not configured on this server (no `sandbox` section in keel.json)"


async def _workspace(request: Request, thread_id: str) -> tuple[str, Sandbox | None]:
    """The thread (404 unless the caller may read it) and its workspace, None when it has none
    yet; 404 when the server has no sandbox."""
    thread_id = check_uuid(thread_id, "thread_id")
    await (await _svc(request, "read", {"thread_id": thread_id})).get(thread_id)
    s = services(request)
    if s.settings.sandbox is None or s.sandboxes is None:
        raise NotFound(NOT_CONFIGURED)
    await browse.catch_up(s.sandboxes, thread_id)  # several hosts: the latest snapshot first
    return thread_id, browse.existing(s.settings.sandbox, thread_id)


@router.get("/threads/{thread_id}/workspace")
async def listing(request: Request, thread_id: str) -> Any:
    """One directory of the workspace (`?path=`, default its root), not recursive."""
    paths = query_list(request, "path")
    path = paths[-1] if paths else ""
    _, sandbox = await _workspace(request, thread_id)
    if sandbox is None:
        if browse.normalized(path):
            raise NotFound(f"no such directory in the workspace: {path!r}")
        return JSON({"path": "", "entries": [], "truncated": False})
    return JSON(await asyncio.to_thread(browse.listing, sandbox, path))  # up to 10,000 stats


@router.get("/threads/{thread_id}/workspace/{path:path}")
async def download(request: Request, thread_id: str, path: str) -> Any:
    """The file's bytes, streamed, as an attachment."""
    _, sandbox = await _workspace(request, thread_id)
    if sandbox is None:
        raise NotFound(f"no such file in the workspace: {path!r}")
    fd, size = await asyncio.to_thread(browse.open_file, sandbox, path)
    name = path.rsplit("/", 1)[-1]
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StreamingResponse(browse.chunks(fd, size), media_type=media, headers=headers)
