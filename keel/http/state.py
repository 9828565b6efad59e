"""Thread state and history routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keel.errors import InvalidInput
from keel.state import StateService

from .deps import body, check_uuid, query_bool, query_int, query_list, services
from .responses import JSON
from .schemas import HISTORY_LIMIT, HistoryQuery, StateAt, StateUpdate

router = APIRouter(tags=["state"])


def _svc(request: Request) -> StateService:
    s = services(request)
    return StateService(s.storage, s.graphs, s.hub)


@router.get("/threads/{thread_id}/state")
async def get_state(request: Request, thread_id: str) -> Any:
    subgraphs = query_bool(request, "subgraphs")
    return JSON(await _svc(request).get(check_uuid(thread_id, "thread_id"), None, subgraphs))


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(request: Request, thread_id: str, checkpoint_id: str) -> Any:
    subgraphs = query_bool(request, "subgraphs")
    cp = {"checkpoint_id": checkpoint_id}
    return JSON(await _svc(request).get(check_uuid(thread_id, "thread_id"), cp, subgraphs))


@router.post("/threads/{thread_id}/state/checkpoint")
async def post_state_at(request: Request, thread_id: str) -> Any:
    q = await body(request, StateAt)
    cp = q.checkpoint.model_dump()
    return JSON(await _svc(request).get(check_uuid(thread_id, "thread_id"), cp, bool(q.subgraphs)))


@router.post("/threads/{thread_id}/state")
async def update_state(request: Request, thread_id: str) -> Any:
    data = await body(request, StateUpdate)
    given = data.given()
    if data.checkpoint is not None:
        given["checkpoint"] = data.checkpoint.model_dump()
    return JSON(await _svc(request).update(check_uuid(thread_id, "thread_id"), given))


@router.post("/threads/{thread_id}/history")
async def history(request: Request, thread_id: str) -> Any:
    q = (await body(request, HistoryQuery)).given()
    q.setdefault("limit", 1)
    return JSON(await _svc(request).history(check_uuid(thread_id, "thread_id"), q))


@router.get("/threads/{thread_id}/history")
async def history_get(request: Request, thread_id: str) -> Any:
    before = query_list(request, "before")
    limit = query_int(request, "limit", 10)
    if not 1 <= limit <= HISTORY_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {HISTORY_LIMIT}")
    q = {"limit": limit, "before": before[-1] if before else None}
    return JSON(await _svc(request).history(check_uuid(thread_id, "thread_id"), q))
