"""A server started from a config the test writes: Keel on the module's backend, or the reference
(`langgraph dev`) when the backend is "reference"."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import database_for
from tests.support.reference import ROOT, ReferenceServer
from tests.support.server import KeelServer


def reference_server(config: Path, workdir: Path) -> ReferenceServer:
    """The reference's environment has no FastAPI: lend it Keel's (same Starlette, Pydantic)."""
    overlay = workdir / "overlay"
    overlay.mkdir()
    for name in ("fastapi", "annotated_doc"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations
        (overlay / name).symlink_to(spec.submodule_search_locations[0])
    return ReferenceServer(config, workdir, env={"PYTHONPATH": f"{ROOT}{os.pathsep}{overlay}"})


def serve_config(
    backend: str, request: pytest.FixtureRequest, workdir: Path, config: dict[str, Any]
) -> Iterator[str]:
    """`config` written as `workdir/langgraph.json`, a server started with it; its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "langgraph.json"
    path.write_text(json.dumps(config))
    srv: KeelServer | ReferenceServer
    if backend == "reference":
        srv = reference_server(path, workdir)
    else:
        srv = KeelServer(path, workdir, database=database_for(backend, request, workdir))
    srv.start()
    try:
        yield srv.url
    finally:
        srv.stop()


def serve_keel(
    backend: str,
    request: pytest.FixtureRequest,
    workdir: Path,
    config: dict[str, Any],
    env: dict[str, str] | None = None,
) -> Iterator[KeelServer]:
    """Keel only (a config with Keel's own sections): `config` written as `workdir/keel.json`,
    a server started with it and `env` on a fresh database of `backend`; stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "keel.json"
    path.write_text(json.dumps(config))
    database = database_for(backend, request, workdir)
    srv = KeelServer(path, workdir, database=database, env=env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
