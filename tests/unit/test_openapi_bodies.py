"""/openapi.json documents every route's request body (keel/http/openapi.py), so a new route
that reads a body cannot be left out of the schema unnoticed."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keel.http.app import create_app
from keel.http.openapi import BODIES, NO_BODY, QUERY
from keel.settings import AuthSettings, Settings

WRITES = {"post", "put", "patch"}


def schema() -> dict[str, Any]:
    """Every route: the built-in auth's administration routes too."""
    app = create_app(Settings(auth=AuthSettings(api_keys=True)))
    assert isinstance(app, FastAPI)
    return app.openapi()


def test_every_route_that_takes_a_body_documents_it() -> None:
    paths = schema()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in WRITES and (method, path) not in NO_BODY:
                assert "requestBody" in operation, f"{method.upper()} {path}: add it to BODIES"
    assert set(BODIES) | NO_BODY | set(QUERY) <= {
        (m, p) for p, ops in paths.items() for m in ops
    }, "an entry names a route that does not exist"


def test_bodies_refer_to_models_in_the_components() -> None:
    spec = schema()
    body = spec["paths"]["/threads/{thread_id}/runs"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    run_create = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert run_create["required"] == ["assistant_id"]
    assert spec["paths"]["/threads/search"]["post"]["requestBody"]["required"] is False
    batch = spec["paths"]["/runs/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["type"] == "array"


def test_query_parameters_and_uuid_ids() -> None:
    paths = schema()["paths"]
    store = {p["name"]: p for p in paths["/store/items"]["get"]["parameters"]}
    assert store["key"]["required"] is True and store["namespace"]["required"] is False
    run = {p["name"]: p for p in paths["/threads/{thread_id}/runs/{run_id}"]["get"]["parameters"]}
    assert run["thread_id"]["schema"]["format"] == "uuid"
    assert run["run_id"]["schema"]["format"] == "uuid"
