"""A cron runs as its creator, in its creator's organisation (built-in auth on): the scheduler's
run carries the creator (`langgraph_auth_user`) and their organisation, and the graph's store
(tests/graphs/store_org.py, through the worker) is that organisation's: it writes there and
sees nothing of another organisation's items under the same namespace. A cron with a `context`
fires too (the creator does not travel in its `configurable`)."""

from __future__ import annotations

import asyncio
from typing import Any

from keel import clock
from keel.auth.scope import Scope
from keel.auth.user import User
from keel.crons import CronService
from keel.retention.sweeps import Sweeper
from keel.scheduler import Scheduler
from keel.settings import AuthSettings, StoreSettings
from keel.storage.tx import Row
from keel.store_orgs import for_org
from keel.threads import ThreadService
from tests.integration.test_worker import Rig, rig

NS = ["team"]


async def _cron_for(r: Rig, user: User, body: dict[str, Any]) -> Row:
    """A due cron of `user` on a new thread of their organisation."""
    scope = Scope(bound=True, org=user.org)
    thread = await ThreadService(r.storage, scope).create({})
    cron = await CronService(r.storage, r.runs, None, scope, user).create(
        {"assistant_id": "store_org", "schedule": "0 0 1 1 *", **body}, thread["thread_id"]
    )
    async with r.storage.tx() as tx:
        await tx.run(
            "UPDATE crons SET next_run_date=? WHERE cron_id=?",
            [clock.iso(clock.now() - 60), cron["cron_id"]],
        )
    return cron


async def _finished_run(r: Rig, thread_id: str) -> Row:
    for _ in range(1200):
        async with r.storage.read() as tx:
            ids = await tx.thread_run_ids(thread_id)
        if ids:
            run = await r.run_row(ids[0])
            if run["status"] not in ("pending", "running"):
                return run
        await asyncio.sleep(0.05)
    raise AssertionError("the cron's run did not finish")


async def test_a_cron_runs_as_its_creator_in_its_organisation(database_url: str) -> None:
    auth, store_settings = AuthSettings(api_keys=True), StoreSettings(index=None)
    async with rig(database_url, auth=auth, store=store_settings) as r:
        await r.pool.start()
        store = r.storage.store
        await for_org(store, "globex").aput(tuple(NS), "theirs", {"text": "theirs"})
        ann = User("ann", org="acme", role="member", permissions=["threads:create"])
        input_ = {"namespace": NS, "put": "ours"}
        cron = await _cron_for(r, ann, {"input": input_, "context": {"c": 1}})
        assert await Scheduler(r.storage, r.runs, Sweeper(r.storage, r.settings)).tick() == 1
        run = await _finished_run(r, cron["thread_id"])
        assert (run["status"], run["org"]) == ("success", "acme")
        configurable = run["kwargs"]["config"]["configurable"]
        assert configurable["langgraph_auth_user"] == ann.to_dict()
        assert configurable["langgraph_auth_user_id"] == "ann"
        assert configurable["langgraph_auth_permissions"] == ["threads:create"]
        async with r.storage.read() as tx:
            thread = await tx.get_thread(cron["thread_id"])
        assert thread is not None
        assert thread["values"]["seen"] == ["ours"]
        assert thread["values"]["namespaces"] == [NS]
        mine = await for_org(store, "acme").aget(tuple(NS), "ours")
        assert mine is not None and mine.value == {"text": "ours"}
        assert await for_org(store, "globex").aget(tuple(NS), "ours") is None
