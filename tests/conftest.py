"""Shared fixtures: one private PostgreSQL cluster per session; a real Keel server with the test
graphs per test module, once on SQLite and once on PostgreSQL (`backend`)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gate import Gate
from tests.support.postgres import PgCluster
from tests.support.reference import ReferenceServer, reference_requested
from tests.support.server import KeelServer

GRAPHS_CONFIG = Path(__file__).parent / "graphs" / "keel.json"
# KEEL_TEST_REFERENCE=1: the e2e tests run against the reference server (`langgraph dev`) instead,
# to check once that their expectations encode the reference (tests/support/reference.py).
BACKENDS = ("reference",) if reference_requested() else ("sqlite", "postgres")
# Module-scoped parametrisations: a module's server (or database) is started once per value.
MODULE_PARAMS = ("backend", "store_backend")


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    # Raises (the tests error) when PostgreSQL cannot start: never a silent skip.
    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def database_for(backend: str, request: pytest.FixtureRequest, workdir: Path) -> str:
    """A fresh, empty database of the given backend."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'keel.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`backend`: every backend (module-scoped), or those a test's `@pytest.mark.backends(...)`
    names: a test that cannot apply to a backend is not generated for it, rather than skipped."""
    if "backend" not in metafunc.fixturenames or "store_backend" in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    chosen = [b for b in BACKENDS if marker is None or b in marker.args or b == "reference"]
    metafunc.parametrize("backend", chosen, scope="module")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None]:
    collected = {item.nodeid: index for index, item in enumerate(items)}
    yield
    items[:] = one_group_per_module_param(items, collected)


def one_group_per_module_param(
    items: list[pytest.Item], collected: dict[str, int]
) -> list[pytest.Item]:
    """Within each module, the tests of one backend run together, in the order they were
    collected: one server per module and backend. pytest's own grouping fails as soon as a
    module has a test that is also parametrised by `@pytest.mark.parametrize` (it renumbers a
    direct parametrisation's indices per test), and restarted a module's server up to 9 times."""
    module_at: dict[Path, int] = {}
    value_at: dict[tuple[Path, Any], int] = {}
    keys: dict[str, tuple[int, int, int]] = {}
    for position, item in enumerate(items):
        module = module_at.setdefault(item.path, position)
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        value = tuple(params[name] for name in MODULE_PARAMS if name in params)
        if not value:
            keys[item.nodeid] = (module, -1, position)
        else:
            rank = value_at.setdefault((item.path, value), len(value_at))
            keys[item.nodeid] = (module, rank, collected[item.nodeid])
    return sorted(items, key=lambda item: keys[item.nodeid])


def serve(
    backend: str, request: pytest.FixtureRequest, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[KeelServer]:
    """A started server of the module's backend with the test graphs (the reference server for
    `reference`), stopped afterwards. No model is configured, whatever the environment says:
    the chat example must explain itself."""
    env = {"KEEL_MODEL": "", **(env or {})}
    srv: KeelServer | ReferenceServer
    if backend == "reference":
        srv = ReferenceServer(GRAPHS_CONFIG, workdir, env={"KEEL_MODEL": ""})
    else:
        database = database_for(backend, request, workdir)
        srv = KeelServer(GRAPHS_CONFIG, workdir, database=database, env=env)
    srv.start()
    try:
        yield srv  # type: ignore[misc]
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeelServer]:
    yield from serve(backend, request, tmp_path_factory.mktemp(f"keel-{backend}"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database per test, of the module's backend."""
    return database_for(backend, request, tmp_path)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """Holds runs of the slow graph at a step until the test opens it (tests/support/gate.py)."""
    return Gate(tmp_path / "gate")
