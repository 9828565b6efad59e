"""The user a run carries outlives the request that created it: a run re-queued after its worker
died runs for the same user, and so does the run a cron fires."""

from __future__ import annotations

import uuid

from keel import clock
from keel.auth.user import User
from keel.crons import CronService
from keel.retention.sweeps import Sweeper
from keel.run_config import RunAccess, auth_configurable
from keel.scheduler import Scheduler
from tests.integration.test_worker import rig

ALICE = User("alice", permissions=["team:alice"], org="acme", fields={"tier": "gold"})


async def test_a_requeued_run_runs_for_the_user_who_created_it(database_url: str) -> None:
    async with rig(database_url) as r:
        tid = str(uuid.uuid4())
        body = {"assistant_id": "auth_runtime", "input": {}, "if_not_exists": "create"}
        run = await r.runs.create(body, tid, access=RunAccess.of(ALICE))
        async with r.storage.tx() as tx:  # a worker claimed it and died
            await tx.run(
                "UPDATE runs SET status='running', worker_id='dead', lease_until=?, attempt=1 "
                "WHERE run_id=?",
                [clock.now() - 1, run["run_id"]],
            )
        await r.pool.start()
        done = await r.wait_status(run["run_id"], "success")
        assert done["attempt"] == 2 and done["org"] == "acme"
        async with r.storage.read() as tx:
            thread = await tx.get_thread(tid)
        assert thread is not None and thread["org"] == "acme"
        seen = thread["values"]["seen"]
        assert seen["runtime_user"] == "alice" and seen["user_id"] == "alice"
        assert seen["permissions"] == ["team:alice"]
        assert seen["user"]["tier"] == "gold" and seen["user"]["org"] == "acme"


async def test_a_cron_fires_its_run_for_the_user_its_payload_carries(database_url: str) -> None:
    async with rig(database_url) as r:
        crons = CronService(r.storage, r.runs)
        config = {"configurable": auth_configurable(ALICE)}
        body = {"assistant_id": "config_echo", "schedule": "0 0 1 1 *", "config": config}
        cron = await crons.create({**body, "input": {}}, None)
        async with r.storage.tx() as tx:  # due now
            await tx.run(
                "UPDATE crons SET next_run_date=? WHERE cron_id=?",
                [clock.iso(clock.now() - 1), cron["cron_id"]],
            )
        assert await Scheduler(r.storage, r.runs, Sweeper(r.storage, r.settings)).tick() == 1
        async with r.storage.read() as tx:
            runs = await tx.runs_by_status(["pending"])
        assert len(runs) == 1 and runs[0]["org"] == "acme"
        configurable = runs[0]["kwargs"]["config"]["configurable"]
        assert configurable["langgraph_auth_user_id"] == "alice"
        assert configurable["langgraph_auth_user"]["identity"] == "alice"
        assert configurable["user_id"] == "alice"
