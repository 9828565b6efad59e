"""`http.app`: the custom app's lifespan runs inside Keel's (Keel's runtime up first, down last),
with the custom app object it was written for; an object that is not an app is refused."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from keel.errors import ConfigError
from keel.http.custom import combined_lifespan, load_user_app
from keel.settings import HttpSettings, Settings


async def test_custom_lifespan_runs_inside_keels() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def keel(app: Any) -> AsyncIterator[None]:
        events.append("keel up")
        yield
        events.append("keel down")

    @contextlib.asynccontextmanager
    async def custom(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append(f"custom up, own app: {app is user}")
        yield {"per_request": 1}
        events.append("custom down")

    user = Starlette(lifespan=custom)
    server_app = Starlette()
    async with combined_lifespan(keel, user)(server_app) as state:
        assert state == {"per_request": 1}
        events.append("serving")
    assert events == [
        "keel up",
        "custom up, own app: True",
        "serving",
        "custom down",
        "keel down",
    ]


def test_custom_app_must_be_an_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = object()\n")
    settings = Settings(base_dir=tmp_path, http=HttpSettings(app="./app.py:app"))
    with pytest.raises(ConfigError, match=r"http\.app: '\./app\.py:app' is not a Starlette"):
        load_user_app(settings)
    settings.http = HttpSettings(app="./missing.py:app")
    with pytest.raises(ConfigError, match=r"missing\.py"):
        load_user_app(settings)
