"""JSON responses encoded with Keel's serializer (orjson, LangChain-aware)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from keel.serde import dumps


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def paginated(items: list[Any], offset: int, limit: int, has_more: bool) -> JSON:
    headers = {}
    if has_more:
        headers["X-Pagination-Next"] = str(offset + limit)
        headers["X-Pagination-Total"] = str(offset + limit + 1)
    else:
        headers["X-Pagination-Total"] = str(offset + len(items))
    return JSON(items, headers=headers)


def select_fields(items: list[dict[str, Any]], select: list[str] | None) -> list[dict[str, Any]]:
    if not select:
        return items
    return [{k: item.get(k) for k in select} for item in items]
