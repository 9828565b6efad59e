"""Built-in API keys in tests: a server whose config turns them on, `keel keys` / `keel audit`
run as the operator would (a subprocess on the server's database), and direct SQL on that
database for what no command does (moving a key's expiry into the past)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import database_for
from tests.support.reference import ROOT
from tests.support.server import KeelServer

GRAPHS = ROOT / "tests" / "graphs"
KEYS_GRAPHS = {
    "config_echo": f"{GRAPHS / 'config_echo.py'}:graph",
    "pipeline": f"{ROOT / 'examples' / 'agents' / 'pipeline.py'}:graph",
}


def serve_with_keys(
    backend: str, request: pytest.FixtureRequest, workdir: Path, auth: dict[str, Any] | None = None
) -> Iterator[KeelServer]:
    """A started server whose config has `"auth": {"api_keys": true}` (and `auth`'s other keys)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "langgraph.json"
    section = {"api_keys": True, **(auth or {})}
    config.write_text(json.dumps({"graphs": KEYS_GRAPHS, "auth": section}))
    srv = KeelServer(config, workdir, database=database_for(backend, request, workdir))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def keel_cli(server: KeelServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`keel <args> --config <server's> --database <server's>`."""
    where = ["--config", str(server.config), "--database", server.database]
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *args, *where],
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key(server: KeelServer, org: str, role: str, *extra: str) -> str:
    """A new key made with `keel keys create`: what it printed on stdout."""
    done = keel_cli(server, "keys", "create", "--org", org, "--role", role, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def key_id(key: str) -> str:
    return key.split("_")[1]


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def sql(server: KeelServer, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the server's database (`?` placeholders), committed at once."""
    if server.database.startswith("sqlite:///"):
        conn = sqlite3.connect(server.database.removeprefix("sqlite:///"), timeout=10)
        try:
            with conn:
                rows = conn.execute(statement, params).fetchall()
        finally:
            conn.close()
        return rows
    with psycopg.connect(server.database, autocommit=True) as pg:
        cur = pg.execute(statement.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def org_keys(server: KeelServer) -> dict[str, str]:
    """Two organisations' keys: `a_admin`, `a_member`, `a_viewer`, `b_member`, `b_admin`. The
    admins' come from `keel keys create`, the others from the admin endpoint."""
    made = {"a_admin": create_key(server, "org-a", "admin", "--name", "a admin")}
    made["b_admin"] = create_key(server, "org-b", "admin")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for name, admin, role in (
            ("a_member", "a_admin", "member"),
            ("a_viewer", "a_admin", "viewer"),
            ("b_member", "b_admin", "member"),
        ):
            got = http.post("/keel/keys", json={"role": role}, headers=headers(made[admin]))
            assert got.status_code == 200, got.text
            made[name] = got.json()["key"]
    return made
