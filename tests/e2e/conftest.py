"""Fixtures for the end-to-end API tests: official SDK clients (async and sync) on a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.support.server import KeelServer


@pytest.fixture
async def client(server: KeelServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


@pytest.fixture
def server_url(server: KeelServer) -> str:
    return server.url


@pytest.fixture
def sync_client(server: KeelServer) -> Iterator[SyncLangGraphClient]:
    sdk = get_sync_client(url=server.url, api_key=None)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture
async def http(server: KeelServer) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client, for what the SDK hides: headers, status codes, malformed bodies."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as raw:
        yield raw
