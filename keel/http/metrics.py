"""`GET /metrics`: Prometheus text exposition (keel/metrics). Not routed with
`http.disable_metrics` (404); authenticated like any route unless `http.metrics_public`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.metrics import CONTENT_TYPE

from .deps import services

router = APIRouter(tags=["meta"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Any:
    s = services(request)
    body = await s.metrics.render(s.storage, [g.graph_id for g in s.graphs])
    return Response(body, media_type=CONTENT_TYPE)
