"""`Tx`: one transaction's worth of named queries over Keel's tables.

Values are always bound, never formatted in. The queries live in one mixin per resource under
`keel.storage.queries`; `Tx` combines them, and each dialect subclasses it with the statement
primitives and LangGraph's checkpoint tables.
"""

from __future__ import annotations

from keel.storage.queries.assistants import AssistantQueries
from keel.storage.queries.base import Dialect, Row, decode_row, j
from keel.storage.queries.crons import CronQueries
from keel.storage.queries.retention import RetentionQueries
from keel.storage.queries.runs import RunQueries
from keel.storage.queries.stats import StatsQueries
from keel.storage.queries.store import StoreQueries
from keel.storage.queries.threads import ThreadQueries
from keel.storage.queries.triggers import TriggerQueries
from keel.storage.queries.webhooks import WebhookQueries
from keel.storage.queries.workers import WorkerQueries
from keel.storage.queries.workspaces import WorkspaceQueries

__all__ = ["Dialect", "Row", "Tx", "decode_row", "j"]


class Tx(
    AssistantQueries,
    ThreadQueries,
    RunQueries,
    CronQueries,
    StoreQueries,
    RetentionQueries,
    StatsQueries,
    WebhookQueries,
    TriggerQueries,
    WorkspaceQueries,
    WorkerQueries,
):
    """Every named query, bound to one connection."""
