"""LangGraph's SQLite checkpointer, bound to Keel's connection and lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


class KeelSqliteSaver(AsyncSqliteSaver):
    """`AsyncSqliteSaver` whose `alist` releases the shared lock before yielding.

    The stock implementation yields while holding its lock, so any storage call made by the
    consumer between two items (for example reading subgraph state while listing history)
    would deadlock on the lock Keel shares with it. Materialising the page first avoids that.
    """

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = [
            item
            async for item in super().alist(config, filter=filter, before=before, limit=limit)
        ]
        for item in items:
            yield item
