"""Thread state and history routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keel.errors import InvalidInput
from keel.state import StateService

from .auth import authorize, current_user
from .deps import body, check_uuid, query_bool, query_int, query_list, services
from .responses import JSON
from .schemas import HISTORY_LIMIT, HistoryQuery, StateAt, StateUpdate

router = APIRouter(tags=["state"])


async def _svc(request: Request, thread_id: str, action: str = "read") -> StateService:
    """The thread's state as the request's user may `action` it (`threads.read`: reads and
    history; `threads.update`: a state update); a thread outside their scope is not found."""
    s = services(request)
    scope = await authorize(request, "threads", action, {"thread_id": thread_id})
    return StateService(s.storage, s.graphs, s.hub, scope, current_user(request))


@router.get("/threads/{thread_id}/state")
async def get_state(request: Request, thread_id: str) -> Any:
    subgraphs = query_bool(request, "subgraphs")
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id)).get(thread_id, None, subgraphs))


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(request: Request, thread_id: str, checkpoint_id: str) -> Any:
    subgraphs = query_bool(request, "subgraphs")
    cp = {"checkpoint_id": checkpoint_id}
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id)).get(thread_id, cp, subgraphs))


@router.post("/threads/{thread_id}/state/checkpoint")
async def post_state_at(request: Request, thread_id: str) -> Any:
    q = await body(request, StateAt)
    cp = q.checkpoint.model_dump()
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id)).get(thread_id, cp, bool(q.subgraphs)))


@router.post("/threads/{thread_id}/state")
async def update_state(request: Request, thread_id: str) -> Any:
    data = await body(request, StateUpdate)
    given = data.given()
    if data.checkpoint is not None:
        given["checkpoint"] = data.checkpoint.model_dump()
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id, "update")).update(thread_id, given))


@router.post("/threads/{thread_id}/history")
async def history(request: Request, thread_id: str) -> Any:
    q = (await body(request, HistoryQuery)).given()
    q.setdefault("limit", 1)
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id)).history(thread_id, q))


@router.get("/threads/{thread_id}/history")
async def history_get(request: Request, thread_id: str) -> Any:
    before = query_list(request, "before")
    limit = query_int(request, "limit", 10)
    if not 1 <= limit <= HISTORY_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {HISTORY_LIMIT}")
    q = {"limit": limit, "before": before[-1] if before else None}
    thread_id = check_uuid(thread_id, "thread_id")
    return JSON(await (await _svc(request, thread_id)).history(thread_id, q))
