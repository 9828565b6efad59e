"""The console's store search shows semantic scores; its static files are served from the
package without auth (and nothing else under /console), and with auth on the console asks for a
credential, keeps it for the session and then shows the data that identity may see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.console.conftest import CONFIG, start
from tests.graphs.auth_fixed_token import TOKEN
from tests.support.api_keys import create_key
from tests.support.browser import open_console
from tests.support.reference import ROOT
from tests.support.server import KeelServer

AUTH = f"{ROOT / 'tests' / 'graphs' / 'auth_fixed_token.py'}:auth"


async def test_a_semantic_store_search_shows_scores(server: KeelServer, client: Any) -> None:
    await client.store.put_item(["zoo", "notes"], "otter", {"text": "otters hold hands"})
    await client.store.put_item(["zoo", "notes"], "tax", {"text": "quarterly tax forms"})
    async with open_console(server.url) as console:
        await console.visit("store")
        await console.page.click("#namespaces a >> text=zoo.notes")
        await console.page.fill("input[name=query]", "sea mammals holding paws")
        await console.page.click("form.filters button")
        await console.page.wait_for_selector("#items td.score")
        keys = await console.page.locator("#items tbody td:nth-child(2)").all_inner_texts()
        scores = [float(s) for s in await console.page.locator("#items td.score").all_inner_texts()]
        assert keys == ["otter", "tax"]  # the closer item first, as the API ranks them
        assert scores[0] > scores[1]
        assert console.errors == []


async def test_static_files_are_served_and_nothing_else(server: KeelServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        index = await http.get("/console/")
        assert index.status_code == 200 and "app.js" in index.text
        assert index.headers["content-type"].startswith("text/html")
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        script = await http.get("/console/views/thread.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert (await http.get("/console", follow_redirects=True)).url.path == "/console/"
        for bad in (
            "/console/../pyproject.toml",
            "/console/%2e%2e/__init__.py",
            "/console/nope.js",
        ):
            response = await http.get(bad)
            assert response.status_code == 404, bad
            assert "detail" in response.json()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    srv = start(tmp_path_factory.mktemp("console-auth"), {**CONFIG, "auth": {"path": AUTH}})
    try:
        yield srv
    finally:
        srv.stop()


async def test_with_auth_the_console_asks_for_a_token_then_works(auth_server: KeelServer) -> None:
    url = auth_server.url
    sdk = get_client(url=url, headers={"authorization": f"Bearer {TOKEN}"})
    async with sdk:
        mine = (await sdk.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/console/app.js")).status_code == 200  # no data: no auth
        assert (await http.post("/threads/search", json={})).status_code == 401
    async with open_console(url) as console:
        await console.visit("threads")
        await console.page.wait_for_selector("#signin")
        await console.page.select_option("#signin select[name=kind]", "bearer")
        await console.page.fill("#signin input[name=secret]", "wrong")
        await console.page.click("#signin button")
        await console.page.wait_for_selector("#signin >> text=Invalid token")
        await console.page.fill("#signin input[name=secret]", TOKEN)
        await console.page.click("#signin button")
        await console.page.wait_for_selector(f"#thread-results a[href='#/threads/{mine}']")
        # Kept for the session: another view and a reload need no new sign-in.
        await console.visit("overview")
        await console.page.reload()
        await console.page.wait_for_selector("#overview-threads .tile")
        assert await console.page.locator("#signin").count() == 0
        await console.page.click("#signout")
        await console.page.wait_for_selector("#signin")
        # Only the browser's own notes on the refused requests (401), no script error.
        assert [e for e in console.errors if "status of 401" not in e] == []


def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    srv = start(tmp_path, {**CONFIG, "http": {"disable_console": True}})
    try:
        assert httpx.get(f"{srv.url}/console/").status_code == 404
        flags = httpx.get(f"{srv.url}/info").json()["flags"]
        assert (flags["workspaces"], flags["metrics"]) == (False, True)
    finally:
        srv.stop()


async def test_without_metrics_the_overview_says_so(tmp_path: Path) -> None:
    srv = start(tmp_path, {**CONFIG, "http": {"disable_metrics": True}})
    try:
        async with open_console(srv.url) as console:
            await console.visit("overview")
            await console.page.wait_for_selector("#metrics-off")
            await console.page.wait_for_selector("#overview-threads .tile")
            assert console.errors == []  # no request to the missing /metrics
    finally:
        srv.stop()


async def test_under_a_mount_prefix_the_console_calls_the_prefixed_api(tmp_path: Path) -> None:
    srv = start(tmp_path, {**CONFIG, "http": {"mount_prefix": "/api"}})
    try:
        async with get_client(url=f"{srv.url}/api", api_key=None) as sdk:
            tid = (await sdk.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
        async with open_console(f"{srv.url}/api") as console:
            await console.visit("threads")
            await console.page.wait_for_selector(f"#thread-results a[href='#/threads/{tid}']")
            assert console.errors == []
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/console/")).status_code == 404  # only under the prefix
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    srv = start(tmp_path_factory.mktemp("console-keys"), {**CONFIG, "auth": {"api_keys": True}})
    try:
        yield srv
    finally:
        srv.stop()


async def test_an_api_key_shows_only_its_organisations_threads(keys_server: KeelServer) -> None:
    url = keys_server.url
    key_a = create_key(keys_server, "org-a", "member")
    key_b = create_key(keys_server, "org-b", "member")
    async with get_client(url=url, api_key=key_a) as sdk:
        theirs = (await sdk.threads.create(metadata={"graph_id": "slow"}))["thread_id"]
    async with open_console(url) as console:
        await console.visit("threads")
        await console.page.fill("#signin input[name=secret]", key_b)  # API key is the default
        await console.page.click("#signin button")
        await console.page.wait_for_selector("#thread-results >> text=No threads.")
        # Another organisation's thread, opened by its address: the API's 404, shown as such.
        await console.visit(f"threads/{theirs}")
        await console.page.wait_for_selector(".error >> text=404")
        await console.page.click("#signout")
        await console.page.fill("#signin input[name=secret]", key_a)
        await console.page.click("#signin button")
        await console.page.wait_for_selector("#chat")
        await console.visit("threads")
        await console.page.wait_for_selector(f"#thread-results a[href='#/threads/{theirs}']")
        refused = [e for e in console.errors if "status of 401" in e or "status of 404" in e]
        assert console.errors == refused  # the browser's notes on refused requests only
