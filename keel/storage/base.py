"""The storage contract every dialect implements."""

from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.store.base import BaseStore

    from keel.storage.tx import Tx


class Storage(abc.ABC):
    """A database holding Keel's tables and LangGraph's checkpoints.

    `tx()` opens a write transaction and `read()` a read-only one; both yield a `Tx` whose named
    queries are the only SQL Keel runs. `checkpointer` and `store` (long-term memory) are bound to
    the same database.
    """

    dialect: str
    checkpointer: BaseCheckpointSaver[Any]
    store: BaseStore

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def tx(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...
