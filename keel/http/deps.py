"""Request helpers shared by the routers: services, bodies, query strings, ids."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from keel.auth.guard import Guard
from keel.errors import InvalidInput
from keel.graphs import GraphRegistry
from keel.metrics import Metrics
from keel.runs import RunService
from keel.sandbox.sandboxes import Sandboxes
from keel.scheduler import Scheduler
from keel.settings import AuthSettings, Settings
from keel.storage.base import Storage
from keel.streams import StreamHub
from keel.tracing import Tracing
from keel.worker import WorkerPool

from .schemas import MAX_INT, parse_json, validate

M = TypeVar("M", bound=BaseModel)
TRUE = {"true", "1", "yes", "True", "TRUE"}


@dataclass
class Services:
    settings: Settings
    storage: Storage
    graphs: GraphRegistry
    hub: StreamHub
    workers: WorkerPool
    runs: RunService
    scheduler: Scheduler | None = None
    guard: Guard = dataclasses.field(default_factory=lambda: Guard(AuthSettings()))
    sandboxes: Sandboxes | None = None  # the `sandbox` section's service (keel.sandbox)
    metrics: Metrics = dataclasses.field(default_factory=Metrics.off)  # keel.metrics
    tracing: Tracing = dataclasses.field(default_factory=Tracing.off)  # keel.tracing


def services(request: Request) -> Services:
    svc: Services = request.app.state.keel
    return svc


async def body(request: Request, model: type[M]) -> M:
    return validate(model, parse_json(await request.body()))


async def raw_body(request: Request) -> Any:
    return parse_json(await request.body())


def check_uuid(value: str, what: str = "id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(f"Invalid {what}: '{value}' is not a valid UUID") from None


def query_list(request: Request, key: str) -> list[str]:
    """All values of a query key; JSON arrays expanded, empty strings dropped (§1.5)."""
    import orjson

    out: list[str] = []
    for value in request.query_params.getlist(key):
        if value.startswith("["):
            try:
                out.extend(str(v) for v in orjson.loads(value))
            except orjson.JSONDecodeError:
                raise InvalidInput(f"Invalid value for query parameter {key!r}") from None
        elif value:
            out.append(value)
    return out


def query_bool(request: Request, key: str, default: bool = False) -> bool:
    values = query_list(request, key)
    if not values:
        return default
    return values[-1] in TRUE


def query_int(
    request: Request, key: str, default: int, minimum: int = 0, maximum: int = MAX_INT
) -> int:
    values = query_list(request, key)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise InvalidInput(f"Query parameter {key!r} must be an integer") from None
    if not minimum <= value <= maximum:
        raise InvalidInput(f"Query parameter {key!r} must be between {minimum} and {maximum}")
    return value
