"""Servers with an `auth` section (tests/graphs/auth_resources.py), for the e2e auth tests:
Keel on the module's backend, or the reference (`langgraph dev`) when `backend` is "reference".

`orgs=True` turns Keel's built-in auth on (`"api_keys": true`) with the same project handlers:
no key is ever presented, so the guard falls back to `@auth.authenticate`, and the `org` and
`role` its users carry bind them to their organisation. Keel-only: the reference has no
organisations (its tests skip, see `keel_only`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.configured import serve_config
from tests.support.reference import ROOT

GRAPHS = ROOT / "tests" / "graphs"
AUTH = f"{GRAPHS / 'auth_resources.py'}:auth"
FAKE_EMBED_INDEX = {"dims": 256, "embed": f"{ROOT / 'tests' / 'store' / 'fake_embed.py'}:embed"}


def keel_only(backend: str) -> None:
    if backend == "reference":
        pytest.skip("Keel-only: organisations (built-in auth)")


def serve_with_auth(
    backend: str,
    request: pytest.FixtureRequest,
    workdir: Path,
    *,
    orgs: bool = False,
    store: dict[str, Any] | None = None,
) -> Iterator[str]:
    """A started server with the `config_echo` and `store_org` graphs and
    tests/graphs/auth_resources.py; its URL."""
    config: dict[str, Any] = {
        "dependencies": ["."],
        "graphs": {
            "config_echo": f"{GRAPHS / 'config_echo.py'}:graph",
            "store_org": f"{GRAPHS / 'store_org.py'}:graph",
        },
        "auth": {"path": AUTH, **({"api_keys": True} if orgs else {})},
    }
    if store is not None:
        config["store"] = store
    yield from serve_config(backend, request, workdir, config)


def as_user(url: str, name: str) -> LangGraphClient:
    """An official SDK client presenting `name`'s token."""
    return get_client(url=url, api_key=None, headers={"Authorization": f"Bearer {name}"})


def raw_as(url: str, name: str) -> httpx.AsyncClient:
    """A raw HTTP client presenting `name`'s token (status codes, bodies the SDK hides)."""
    return httpx.AsyncClient(
        base_url=url, timeout=30.0, headers={"Authorization": f"Bearer {name}"}
    )


async def clients_as(url: str, names: tuple[str, ...]) -> AsyncIterator[dict[str, LangGraphClient]]:
    """An official SDK client per user name (`as_user`), closed afterwards."""
    clients = {name: as_user(url, name) for name in names}
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
