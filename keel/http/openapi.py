"""Request bodies and query parameters in /openapi.json.

Keel's routes read their bodies and query strings themselves (`deps.body(request, Model)`,
`deps.query_list`: Keel's error format, unknown fields allowed), so FastAPI does not see them;
this adds each route's body model and query parameters to the schema, and marks the ids that must
be UUIDs, for clients, generators and fuzzers (tests/e2e/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import schemas as s
from .a2a import JsonRpcRequest
from .admin import KeyCreate
from .threadstream import EventStreamBody, ProtocolCommand

REF = "#/components/schemas/{model}"
# (method, path) -> the model of its JSON body (a list of it for /runs/batch)
BODIES: dict[tuple[str, str], type[BaseModel] | tuple[type[BaseModel]]] = {
    ("post", "/assistants"): s.AssistantCreate,
    ("post", "/assistants/search"): s.AssistantSearch,
    ("post", "/assistants/count"): s.AssistantSearch,
    ("patch", "/assistants/{assistant_id}"): s.AssistantPatch,
    ("post", "/assistants/{assistant_id}/versions"): s.VersionsSearch,
    ("post", "/assistants/{assistant_id}/latest"): s.SetLatest,
    ("post", "/threads"): s.ThreadCreate,
    ("post", "/threads/search"): s.ThreadSearch,
    ("post", "/threads/count"): s.ThreadSearch,
    ("post", "/threads/prune"): s.Prune,
    ("patch", "/threads/{thread_id}"): s.ThreadPatch,
    ("post", "/threads/{thread_id}/state"): s.StateUpdate,
    ("post", "/threads/{thread_id}/state/checkpoint"): s.StateAt,
    ("post", "/threads/{thread_id}/history"): s.HistoryQuery,
    ("post", "/runs/crons"): s.CronCreate,
    ("post", "/threads/{thread_id}/runs/crons"): s.CronCreate,
    ("post", "/runs/crons/search"): s.CronSearch,
    ("post", "/runs/crons/count"): s.CronSearch,
    ("patch", "/runs/crons/{cron_id}"): s.CronPatch,
    ("post", "/threads/{thread_id}/runs"): s.RunCreate,
    ("post", "/threads/{thread_id}/runs/stream"): s.RunCreate,
    ("post", "/threads/{thread_id}/runs/wait"): s.RunCreate,
    ("post", "/runs"): s.RunCreate,
    ("post", "/runs/stream"): s.RunCreate,
    ("post", "/runs/wait"): s.RunCreate,
    ("post", "/runs/batch"): (s.RunCreate,),
    ("post", "/runs/cancel"): s.BulkCancel,
    ("put", "/store/items"): s.StorePut,
    ("delete", "/store/items"): s.StoreDelete,
    ("post", "/store/items/search"): s.StoreSearch,
    ("post", "/store/namespaces"): s.StoreNamespaces,
    ("post", "/keel/keys"): KeyCreate,
    ("post", "/a2a/{assistant_id}"): JsonRpcRequest,
    ("post", "/threads/{thread_id}/commands"): ProtocolCommand,
    ("post", "/threads/{thread_id}/stream/events"): EventStreamBody,
}
# Routes that take no body (their input is in the path and the query string).
NO_BODY = {
    ("post", "/threads/{thread_id}/copy"),
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"),
}

BOOL: dict[str, Any] = {"type": "boolean"}
INT: dict[str, Any] = {"type": "integer"}
STR: dict[str, Any] = {"type": "string"}
STRS: dict[str, Any] = {"type": "array", "items": STR}
RUN = "/threads/{thread_id}/runs/{run_id}"
# (method, path) -> its query parameters (name -> schema; a name ending in "*" is required)
QUERY: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/ok"): {"check_db": BOOL},
    ("delete", "/assistants/{assistant_id}"): {"delete_threads": BOOL},
    ("get", "/assistants/{assistant_id}/graph"): {"xray": {"anyOf": [BOOL, INT]}},
    ("get", "/assistants/{assistant_id}/subgraphs"): {"recurse": BOOL},
    ("get", "/assistants/{assistant_id}/subgraphs/{namespace}"): {"recurse": BOOL},
    ("get", "/threads/{thread_id}"): {"include": STRS},
    ("get", "/threads/{thread_id}/stream"): {"stream_modes": STRS},
    ("get", "/threads/{thread_id}/state"): {"subgraphs": BOOL},
    ("get", "/threads/{thread_id}/state/{checkpoint_id}"): {"subgraphs": BOOL},
    ("get", "/threads/{thread_id}/history"): {"limit": INT, "before": STR},
    ("get", "/threads/{thread_id}/workspace"): {"path": STR},
    ("get", "/.well-known/agent-card.json"): {"assistant_id*": STR},
    ("get", "/threads/{thread_id}/runs"): {
        "limit": INT,
        "offset": INT,
        "status": STR,
        "select": STRS,
    },
    ("get", RUN + "/join"): {"cancel_on_disconnect": BOOL},
    ("get", RUN + "/stream"): {"stream_mode": STRS, "cancel_on_disconnect": BOOL},
    ("post", RUN + "/cancel"): {"wait": BOOL, "action": {"enum": ["interrupt", "rollback"]}},
    ("get", "/store/items"): {"namespace": STR, "key*": STR, "refresh_ttl": BOOL},
    ("get", "/keel/audit"): {
        "since": STR,
        "outcome": {"enum": ["ok", "refused"]},
        "limit": INT,
        "offset": INT,
        "org": STR,
    },
}
UUID_PATH_PARAMETERS = {"thread_id", "run_id", "cron_id"}


def document_bodies(app: FastAPI) -> None:
    """Wrap `app.openapi` so every route shows its JSON request body and query parameters."""
    build = app.openapi
    done: list[int] = []  # ids of the schemas already given their bodies

    def openapi() -> dict[str, Any]:
        schema = build()
        if id(schema) not in done:
            add_bodies(schema)
            add_parameters(schema)
            done.append(id(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_bodies(schema: dict[str, Any]) -> None:
    models = sorted({_model(m) for m in BODIES.values()}, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
    for (method, path), model in BODIES.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:  # a surface turned off, or a custom app's route
            continue
        ref = refs[(_model(model), "validation")]
        body = {"type": "array", "items": ref} if isinstance(model, tuple) else ref
        operation["requestBody"] = {
            "required": _required(_model(model)),
            "content": {"application/json": {"schema": body}},
        }


def add_parameters(schema: dict[str, Any]) -> None:
    for (method, path), query in QUERY.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        known = {p.get("name") for p in parameters}
        for name, param_schema in query.items():
            required = name.endswith("*")
            name = name.rstrip("*")
            if name not in known:
                parameters.append(
                    {"name": name, "in": "query", "required": required, "schema": param_schema}
                )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in UUID_PATH_PARAMETERS:
                    parameter["schema"] = {**parameter.get("schema", {}), "format": "uuid"}


def _model(model: type[BaseModel] | tuple[type[BaseModel]]) -> type[BaseModel]:
    return model[0] if isinstance(model, tuple) else model


def _required(model: type[BaseModel]) -> bool:
    """A body whose every field has a default may be left out (Keel reads none as `{}`)."""
    return any(field.is_required() for field in model.model_fields.values())
