"""Keel's PostgreSQL pool keeps its connections whatever cancels its users: a run cancelled, an
event flush cancelled at a run's end, a request given up, each possibly while its connection is on
its way back to the pool."""

from __future__ import annotations

import asyncio

import pytest

from keel.storage.postgres import PostgresStorage
from tests.support.postgres import PgCluster


async def test_a_cancel_while_a_connection_is_returned_does_not_lose_it(
    pg_cluster: PgCluster,
) -> None:
    """psycopg_pool (3.3) loses a connection whose return a cancel interrupts while it waits
    for the pool's lock, which another client holds (handing out or taking back a connection:
    under load, often). A pool of 20 lost them all within seconds of the cancel-race stress
    test, and every request then failed with "couldn't get a connection after 10 sec"."""
    storage = PostgresStorage(pg_cluster.create_database(), pool_size=2)
    await storage.open()
    try:
        pool = storage.pool
        first, second = await pool.getconn(), await pool.getconn()
        async with pool._lock:  # another client in the pool's critical section
            returning = asyncio.create_task(pool.putconn(first))
            await asyncio.sleep(0.05)
            assert not returning.done()  # waiting for the lock
            returning.cancel()
            with pytest.raises(asyncio.CancelledError):
                await returning
        await pool.putconn(second)
        # Both connections are back: two clients get one each.
        again = [await pool.getconn(timeout=5), await pool.getconn(timeout=5)]
        for conn in again:
            await pool.putconn(conn)
    finally:
        await storage.close()
