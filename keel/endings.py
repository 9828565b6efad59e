"""What else happens in a run's terminal transaction: hooks that write their own rows in the
same transaction as the run's end (a webhook's outbox entry, a sleep-time trigger's state), so
a crash never separates the run's outcome from what follows it.

Every place where a run ends calls `Endings.record`: the worker's terminal transaction
(`keel.worker.pool`) and the cancel of a pending run (`keel.runs`). A rolled-back run is
deleted, not ended: no hook sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from keel.storage.tx import Row, Tx


@dataclass(frozen=True)
class RunEnd:
    """A run that has just ended: its row as claimed or read (`kwargs`, `metadata`, ...), its
    terminal status, the thread's values after it (None when unknown), its error payload."""

    run: Row
    status: str
    now: str
    values: Any = None
    error: Any = None


EndHook = Callable[[Tx, RunEnd], Awaitable[None]]


@dataclass
class Endings:
    """The hooks of one process, in the order they were added."""

    hooks: list[EndHook] = field(default_factory=list)

    def add(self, hook: EndHook) -> None:
        self.hooks.append(hook)

    async def record(self, tx: Tx, end: RunEnd) -> None:
        for hook in self.hooks:
            await hook(tx, end)
