"""The private PostgreSQL cluster: separate databases, both URLs, data kept across restarts."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support.postgres import PgCluster


def test_databases_are_distinct(pg_cluster: PgCluster) -> None:
    first, second = pg_cluster.create_database(), pg_cluster.create_database()
    assert first != second
    with psycopg.connect(first) as a, psycopg.connect(second) as b:
        a.execute("CREATE TABLE only_here (x int)")
        a.commit()
        name_a = a.execute("SELECT current_database()").fetchone()
        name_b = b.execute("SELECT current_database()").fetchone()
        assert name_a != name_b
        assert b.execute("SELECT to_regclass('only_here')").fetchone() == (None,)


def test_socket_url_reaches_the_same_server(pg_cluster: PgCluster) -> None:
    assert pg_cluster.create_database("by_socket") == pg_cluster.url("by_socket")
    with psycopg.connect(pg_cluster.socket_url("by_socket")) as conn:
        row = conn.execute("SELECT current_database(), inet_server_addr()").fetchone()
    assert row == ("by_socket", None)  # no server address: a unix socket


def test_restart_keeps_data(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('before restart')")
    port, pids = pg_cluster.port, pg_cluster.pids()
    pg_cluster.restart()
    assert pg_cluster.port == port and pg_cluster.pids() != pids
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT note FROM kept").fetchall() == [("before restart",)]


def test_kill9_keeps_committed_data(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (i int)")
        for i in range(100):
            conn.execute("INSERT INTO kept VALUES (%s)", (i,))
        pg_cluster.kill9()
    pg_cluster.start()  # crash recovery
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (100,)


def test_cluster_survives_its_parent_directory_turning_private(tmp_path: Path) -> None:
    """Every pytest session that starts strips group and other access from
    /tmp/pytest-of-<user>; as root the server runs as `postgres`, which must still reach its
    data directory and socket afterwards."""
    parent = tmp_path / "session"
    cluster = PgCluster(parent / "pg")
    cluster.start()
    try:
        parent.chmod(0o700)
        tmp_path.chmod(0o700)
        with psycopg.connect(cluster.create_database()) as conn:
            conn.execute("CREATE TABLE t (i int)")  # a new relation file in the data directory
        cluster.restart()
    finally:
        cluster.stop()
