"""`GET /threads/{tid}/workspace[/{path}]` through a real server on both backends: listing,
download, traversal refused (`..` encoded or not, absolute paths, NUL, symlinks to the host and
to another thread's workspace), organisations kept apart (built-in API keys), 404s, and the
workspace's lifecycle over HTTP (DELETE removes it, a copy starts without one).

Keel-only (a Keel config section, built-in auth): the reference has no workspace routes; only
the last test (a server without workspaces answers 404 `{"detail"}`) also runs against it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from keel.sandbox import Sandbox, for_thread
from keel.settings.sandbox import SandboxSettings
from tests.conftest import database_for, serve
from tests.support.api_keys import KEYS_GRAPHS, headers, org_keys
from tests.support.configured import serve_keel
from tests.support.sandbox import traversable_dir
from tests.support.server import KeelServer

MISSING = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def root(backend: str) -> Iterator[Path]:
    """The workspaces' root, one per server: a root belongs to one database (its orphan sweep
    removes workspaces of threads that database does not have). 0711 above it: the sandbox's
    user traverses it when the tests run as root."""
    with traversable_dir(f"keel-ws-http-{backend}-") as base:
        yield base / "workspaces"


@pytest.fixture(scope="module")
def ws_server(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    root: Path,
) -> Iterator[KeelServer]:
    if backend == "reference":
        pytest.skip("Keel-only: the reference has no sandbox workspaces")
    workdir = tmp_path_factory.mktemp(f"ws-{backend}")
    config = {"graphs": KEYS_GRAPHS, "auth": {"api_keys": True}, "sandbox": {}}
    env = {"KEEL_SANDBOX_ROOT": str(root)}
    yield from serve_keel(backend, request, workdir, config, env)


@pytest.fixture(scope="module")
def keys(ws_server: KeelServer) -> dict[str, str]:
    return org_keys(ws_server)


@pytest.fixture
async def http(ws_server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ws_server.url, timeout=30) as client:
        yield client


async def new_thread(http: httpx.AsyncClient, key: str) -> str:
    got = await http.post("/threads", json={}, headers=headers(key))
    assert got.status_code == 200, got.text
    return str(got.json()["thread_id"])


def sandbox(root: Path, thread_id: str) -> Sandbox:
    """The thread's workspace from the host side, as a run's graph would fill it."""
    return for_thread(thread_id, SandboxSettings(root=root))


async def test_listing_and_download(
    http: httpx.AsyncClient, keys: dict[str, str], root: Path
) -> None:
    thread = await new_thread(http, keys["a_member"])
    sb = sandbox(root, thread)
    sb.write("report.csv", "a,b\n1,2\n")
    (sb.workspace / "src").mkdir()
    sb.write("src/main.py", "print('hi')\n")
    big = os.urandom(300_000)  # several of the server's chunks
    sb.write("src/blob.bin", big)
    h = headers(keys["a_viewer"])  # whoever may read the thread may read its workspace
    got = await http.get(f"/threads/{thread}/workspace", headers=h)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["path"] == "" and body["truncated"] is False
    assert [(e["name"], e["type"], e["size"]) for e in body["entries"]] == [
        ("report.csv", "file", 8),
        ("src", "dir", None),
    ]
    assert body["entries"][0]["path"] == "report.csv" and body["entries"][0]["modified_at"]
    sub = (await http.get(f"/threads/{thread}/workspace", params={"path": "src"}, headers=h))
    assert [e["path"] for e in sub.json()["entries"]] == ["src/blob.bin", "src/main.py"]
    csv = await http.get(f"/threads/{thread}/workspace/report.csv", headers=h)
    assert csv.status_code == 200 and csv.content == b"a,b\n1,2\n"
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == "attachment; filename*=UTF-8''report.csv"
    assert csv.headers["x-content-type-options"] == "nosniff"
    blob = await http.get(f"/threads/{thread}/workspace/src/blob.bin", headers=h)
    assert blob.content == big and blob.headers["content-type"] == "application/octet-stream"
    folder = await http.get(f"/threads/{thread}/workspace/src", headers=h)
    assert folder.status_code == 400 and "directory" in folder.json()["detail"]


async def test_a_thread_without_a_workspace_lists_empty_and_creates_none(
    http: httpx.AsyncClient, keys: dict[str, str], root: Path
) -> None:
    thread = await new_thread(http, keys["a_member"])
    h = headers(keys["a_member"])
    got = await http.get(f"/threads/{thread}/workspace", headers=h)
    assert got.json() == {"path": "", "entries": [], "truncated": False}
    assert (await http.get(f"/threads/{thread}/workspace/x.txt", headers=h)).status_code == 404
    sub = await http.get(f"/threads/{thread}/workspace", params={"path": "d"}, headers=h)
    assert sub.status_code == 404
    assert not (root / thread).exists()


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "sub/%2e%2e/%2e%2e/x",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "a%00b",
        "to-passwd",
        "to-other/secret.txt",
        "to-other-abs/secret.txt",
    ],
)
async def test_traversal_is_refused(
    http: httpx.AsyncClient, keys: dict[str, str], root: Path, path: str
) -> None:
    thread, other = await new_thread(http, keys["a_member"]), await new_thread(
        http, keys["a_member"]
    )
    sb = sandbox(root, thread)
    (sb.workspace / "sub").mkdir()
    sandbox(root, other).write("secret.txt", "another thread's")
    os.symlink("/etc/passwd", sb.workspace / "to-passwd")
    os.symlink(f"../{other}", sb.workspace / "to-other")
    os.symlink(str(root / other), sb.workspace / "to-other-abs")
    h = headers(keys["a_member"])
    got = await http.get(f"/threads/{thread}/workspace/{path}", headers=h)
    assert got.status_code == 422, got.text  # refused by the workspace API, not routing
    assert b"root:" not in got.content and b"another thread" not in got.content
    assert "detail" in got.json()
    listed = await http.get(f"/threads/{thread}/workspace", params={"path": "to-other"}, headers=h)
    assert 400 <= listed.status_code < 500 and "detail" in listed.json()
    up = await http.get(f"/threads/{thread}/workspace", params={"path": "../"}, headers=h)
    assert up.status_code == 422 and "detail" in up.json()
    entries = (await http.get(f"/threads/{thread}/workspace", headers=h)).json()["entries"]
    assert {e["name"]: e["type"] for e in entries}["to-passwd"] == "symlink"


async def test_another_organisation_gets_404_and_missing_threads_404(
    http: httpx.AsyncClient, keys: dict[str, str], root: Path
) -> None:
    thread = await new_thread(http, keys["a_member"])
    sandbox(root, thread).write("private.txt", "org a's")
    for url in (f"/threads/{thread}/workspace", f"/threads/{thread}/workspace/private.txt"):
        got = await http.get(url, headers=headers(keys["b_member"]))
        assert got.status_code == 404 and "org a" not in got.text
        assert (await http.get(url)).status_code == 401  # no key at all
    for url in (f"/threads/{MISSING}/workspace", f"/threads/{MISSING}/workspace/a.txt"):
        got = await http.get(url, headers=headers(keys["a_member"]))
        assert got.status_code == 404 and "not found" in got.json()["detail"]
    bad = await http.get("/threads/not-a-uuid/workspace", headers=headers(keys["a_member"]))
    assert bad.status_code == 422


async def test_delete_and_prune_remove_the_workspace_and_a_copy_starts_without_one(
    http: httpx.AsyncClient, keys: dict[str, str], root: Path
) -> None:
    h = headers(keys["a_member"])
    thread, pruned = await new_thread(http, h["x-api-key"]), await new_thread(http, h["x-api-key"])
    sandbox(root, thread).write("made.txt", "by the agent")
    sandbox(root, pruned).write("made.txt", "by the agent")
    got = await http.post("/threads/prune", json={"thread_ids": [pruned]}, headers=h)
    assert got.status_code == 200 and got.json() == {"pruned_count": 1}, got.text
    assert not (root / pruned).exists()
    copied = await http.post(f"/threads/{thread}/copy", headers=h)
    assert copied.status_code == 200, copied.text
    copy_id = copied.json()["thread_id"]
    listed = await http.get(f"/threads/{copy_id}/workspace", headers=h)
    assert listed.json()["entries"] == []
    assert (await http.delete(f"/threads/{thread}", headers=h)).status_code == 204
    assert not (root / thread).exists()
    assert (await http.get(f"/threads/{thread}/workspace", headers=h)).status_code == 404


@pytest.fixture(scope="module")
def plain_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    """A server without a `sandbox` section (the reference's, under KEEL_TEST_REFERENCE=1)."""
    workdir = tmp_path_factory.mktemp(f"ws-plain-{backend}")
    if backend == "reference":
        yield from serve(backend, request, workdir)
        return
    config = workdir / "keel.json"
    config.write_text(json.dumps({"graphs": KEYS_GRAPHS}))
    srv = KeelServer(config, workdir, database=database_for(backend, request, workdir))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_without_a_sandbox_section_the_routes_say_so(
    plain_server: KeelServer, backend: str
) -> None:
    """As the reference, which has no such routes: a 404 `{"detail"}`; Keel says why."""
    async with httpx.AsyncClient(base_url=plain_server.url, timeout=30) as client:
        thread = (await client.post("/threads", json={})).json()["thread_id"]
        for url in (f"/threads/{thread}/workspace", f"/threads/{thread}/workspace/a.txt"):
            got = await client.get(url)
            assert got.status_code == 404 and "detail" in got.json()
            if backend != "reference":
                assert got.json()["detail"].startswith("the sandbox is not configured")
