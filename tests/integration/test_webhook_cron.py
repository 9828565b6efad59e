"""A cron's runs carry its `webhook`: the scheduler fires the cron, the worker ends its run, and
the outbox delivers the run's body (with the cron's id in its metadata) to a real receiver."""

from __future__ import annotations

from keel import clock
from keel.auth.scope import EVERYTHING
from keel.background.outbox import Outbox
from keel.crons import CronService
from keel.retention.sweeps import Sweeper
from keel.scheduler import Scheduler
from keel.settings import RetryPolicy, UrlPolicy, WebhookSettings
from keel.threads import ThreadService
from tests.integration.test_worker import rig
from tests.support.receiver import Receiver, verify

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOKS = WebhookSettings(
    url=UrlPolicy(disable_loopback=False), secret=SECRET, retry=RetryPolicy(initial_seconds=0.2)
)


async def test_a_crons_run_delivers_its_webhook(database_url: str) -> None:
    with Receiver() as receiver:
        async with rig(database_url, webhooks=HOOKS) as r:
            outbox = Outbox(
                r.storage, HOOKS, enabled=True, holder="t", poll_seconds=0.2, lease_seconds=3
            )
            r.pool.endings.add(outbox.record)
            await outbox.start()
            await r.pool.start()
            try:
                url = receiver.url + "/ok/cron"
                thread = await ThreadService(r.storage, EVERYTHING).create({})
                body = {"assistant_id": "pipeline", "schedule": "0 0 1 1 *", "webhook": url}
                crons = CronService(r.storage, r.runs, None, EVERYTHING, None)
                cron = await crons.create({**body, "input": {"topic": "c"}}, thread["thread_id"])
                async with r.storage.tx() as tx:  # due now
                    await tx.run(
                        "UPDATE crons SET next_run_date=? WHERE cron_id=?",
                        [clock.iso(clock.now() - 60), cron["cron_id"]],
                    )
                assert await Scheduler(r.storage, r.runs, Sweeper(r.storage, r.settings)).tick()
                [got] = await receiver.arrived("/ok/cron")
            finally:
                await outbox.stop(1.0)
    sent = got.json()
    assert sent["status"] == "success" and sent["thread_id"] == thread["thread_id"]
    assert sent["metadata"]["cron_id"] == cron["cron_id"]
    assert sent["kwargs"]["webhook"] == url
    assert verify(SECRET, got.headers, got.body)
