"""Request bodies. Unknown fields are ignored (the SDKs add new ones over time); fields from
the reference that Keel cannot honour are refused with a 422 that names them."""

from __future__ import annotations

import uuid
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import InvalidInput
from keel.lanes import lane_of
from keel.settings.retention import MAX_TTL_MINUTES

StreamMode = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "tasks",
    "checkpoints",
]
Strategy = Literal["reject", "interrupt", "rollback", "enqueue"]
MAX_AFTER_SECONDS = 10 * 366 * 86400  # a run delayed by more than ten years is a mistake
MAX_INT = 2**63 - 1  # the largest integer SQLite and PostgreSQL (bigint) hold


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    def given(self) -> dict[str, Any]:
        """The declared fields the client actually sent."""
        return self.model_dump(exclude_unset=True, include=set(type(self).model_fields))


def _uuid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"'{value}' is not a valid UUID") from None


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resume: Any = None
    update: dict[str, Any] | list[list[Any]] | None = None
    goto: Any = None


class CheckpointRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    checkpoint_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_map: dict[str, Any] | None = None
    thread_id: str | None = None


class RunCreate(Body):
    assistant_id: str
    input: Any = None
    command: Command | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = False
    stream_resumable: bool | None = False
    feedback_keys: list[str] | None = None
    multitask_strategy: Strategy | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    after_seconds: float | None = Field(default=None, ge=0, le=MAX_AFTER_SECONDS)
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: bool | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _modes(cls, value: Any) -> Any:
        if isinstance(value, list):
            bad = [m for m in value if m in ("tools", "lifecycle")]
            if bad:
                raise ValueError(f"stream mode {bad[0]!r} is only valid on the v3 endpoints")
        return value

    def normalized(self, stateless: bool) -> dict[str, Any]:
        data = self.given()
        if self.feedback_keys:
            raise InvalidInput("feedback_keys: LangSmith feedback is not supported")
        if self.langsmith_tracer:
            raise InvalidInput("langsmith_tracer: LangSmith tracing is not supported")
        if self.strict_resume:
            raise InvalidInput("strict_resume: not supported yet")
        lane_of(self.metadata)  # Keel's `metadata.keel_lane`: a bad value is a 422 here
        if stateless:
            for name in ("checkpoint", "checkpoint_id"):
                if data.get(name) is not None:
                    raise InvalidInput(f"{name}: not allowed on a stateless run")
            # Meaningless on the run's own new thread, sent anyway (RemoteGraph sends
            # if_not_exists="create"): accepted and ignored, as the reference does.
            data.pop("if_not_exists", None)
            data.pop("multitask_strategy", None)
        elif self.on_completion is not None:
            raise InvalidInput("on_completion: only allowed on stateless runs")
        modes = data.get("stream_mode")
        if isinstance(modes, str):
            data["stream_mode"] = [modes]
        if self.checkpoint_during is False and not self.durability:
            data["durability"] = "exit"
        if self.command is not None:
            data["command"] = self.command.model_dump(exclude_unset=True)
        if self.checkpoint is not None:
            data["checkpoint"] = {
                k: v for k, v in self.checkpoint.model_dump().items() if v not in (None, "")
            } or None
        return data


class AssistantCreate(Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    name: str | None = None
    description: str | None = None

    @field_validator("assistant_id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        return _uuid(value)


class AssistantPatch(Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class Search(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=0, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_INT)
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class AssistantSearch(Search):
    graph_id: str | None = None
    name: str | None = None
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None


class VersionsSearch(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=0, le=MAX_INT)
    offset: int = Field(default=0, ge=0, le=MAX_INT)


class SetLatest(Body):
    version: int = Field(ge=-MAX_INT - 1, le=MAX_INT)


class Ttl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl: float = Field(ge=0, le=MAX_TTL_MINUTES)
    strategy: Literal["delete", "keep_latest"] = "delete"


class SuperstepUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    values: dict[str, Any] | list[dict[str, Any]] | None = None
    command: Command | None = None
    as_node: str


class Superstep(BaseModel):
    model_config = ConfigDict(extra="allow")
    updates: list[SuperstepUpdate]


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    ttl: Ttl | None = None
    supersteps: list[Superstep] | None = None

    def superstep_rows(self) -> list[dict[str, Any]]:
        """The supersteps as plain dicts (commands with only the fields the client sent)."""
        return [
            {"updates": [u.model_dump(exclude_unset=True) for u in step.updates]}
            for step in self.supersteps or []
        ]

    @field_validator("thread_id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        return _uuid(value)


class ThreadPatch(Body):
    metadata: dict[str, Any] | None = None
    ttl: Ttl | None = None


ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
]
HISTORY_LIMIT = 1000  # the reference's maximum for history and thread search


class ThreadSearch(Search):
    limit: int = Field(default=10, ge=1, le=HISTORY_LIMIT)
    select: list[ThreadField] | None = None  # type: ignore[assignment]
    ids: list[str] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    extract: dict[str, str] | None = None


class Prune(Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"

    @field_validator("thread_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return [str(_uuid(v)) for v in value]


class StateUpdate(Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class StateAt(Body):
    checkpoint: CheckpointRef
    subgraphs: bool | None = False


class HistoryQuery(Body):
    limit: int = Field(default=1, ge=1, le=HISTORY_LIMIT)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


class BulkCancel(Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


class StorePut(Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(default=None, ge=0)


class StoreDelete(Body):
    namespace: list[str] = Field(default_factory=list)
    key: str


class StoreSearch(Body):
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=0, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_INT)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=0, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_INT)


class CronCreate(RunCreate):
    schedule: str
    end_time: str | None = None
    enabled: bool | None = True
    timezone: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


class CronPatch(Body):
    schedule: str | None = None
    end_time: str | None = None
    enabled: bool | None = None
    timezone: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    metadata: dict[str, Any] | None = None
    input: Any = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None

    def normalized(self) -> dict[str, Any]:
        data = self.given()
        for name in ("schedule", "enabled"):
            if name in data and data[name] is None:
                raise InvalidInput(f"{name}: must not be null")
        if isinstance(data.get("stream_mode"), str):
            data["stream_mode"] = [data["stream_mode"]]
        return data


class CronSearch(Search):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    sort_by: str | None = None


M = TypeVar("M", bound=BaseModel)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Invalid JSON body: {exc}") from None


def validate(model: type[M], data: Any) -> M:
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "body"
            parts.append(f"{loc}: {err['msg']}")
        raise InvalidInput("; ".join(parts)) from None
