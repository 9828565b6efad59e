"""The webhook outbox without HTTP: a cron's runs carry its `webhook` (the scheduler fires the
cron, the worker ends its run, the outbox delivers the body, with the cron's id in its metadata,
to a real receiver); claims lease a delivery to one holder at a time; delivery rows go with their
run (deleted, or a stateless run swept, which waits while its webhook is pending)."""

from __future__ import annotations

from keel import clock
from keel.auth.scope import EVERYTHING
from keel.background.outbox import Outbox
from keel.crons import CronService
from keel.retention.sweeps import Sweeper
from keel.scheduler import Scheduler
from keel.settings import RetryPolicy, UrlPolicy, WebhookSettings
from keel.threads import ThreadService
from tests.integration.test_worker import Rig, rig
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


async def _finished_with_delivery(r: Rig, temporary: bool) -> str:
    """A finished run (a day old) with a pending delivery row."""
    run_id = await r.thread_run("pipeline", {"topic": "x"})
    old = clock.iso(clock.now() - 86400)
    async with r.storage.tx() as tx:
        await tx.run(
            "UPDATE runs SET status='success', temporary=?, updated_at=? WHERE run_id=?",
            [1 if temporary else 0, old, run_id],
        )
        run = await tx.get_run(run_id)
        assert run is not None
        row = {
            "run_id": run_id,
            "thread_id": run["thread_id"],
            "webhook_id": "msg_" + run_id.replace("-", ""),
            "url": "http://127.0.0.1:9/hook",
            "payload": {"run_id": run_id},
            "created_at": old,
            "next_attempt_at": clock.now() + 3600,
            "give_up_at": clock.now() + 7200,
        }
        await tx.insert_delivery(row)
        await tx.insert_delivery({**row, "webhook_id": "msg_again"})  # one per run
    return run_id


async def test_claims_lease_and_rows_go_with_their_run(database_url: str) -> None:
    async with rig(database_url) as r:
        stateless = await _finished_with_delivery(r, temporary=True)
        kept = await _finished_with_delivery(r, temporary=False)
        now = clock.now() + 3600  # both due
        async with r.storage.tx() as tx:
            first = await tx.claim_deliveries("a", now, clock.iso(now), now + 5, 10)
            second = await tx.claim_deliveries("b", now, clock.iso(now), now + 5, 10)
            later = await tx.claim_deliveries("b", now + 6, clock.iso(now), now + 11, 1)
        assert {d["run_id"] for d in first} == {stateless, kept} and second == []
        assert [(d["leased_by"], d["attempts"]) for d in later] == [("b", 2)]
        async with r.storage.tx() as tx:
            # A stateless run stays while its webhook is pending; then goes with its delivery.
            assert await tx.sweep_temporary_runs(clock.iso(), 10) == 0
            await tx.delivered(stateless, 200, clock.iso())
            assert await tx.sweep_temporary_runs(clock.iso(), 10) == 1
            assert await tx.run_deliveries(stateless) == []
            [row] = await tx.run_deliveries(kept)
            assert row["webhook_id"] == "msg_" + kept.replace("-", "")
            await tx.delete_run(kept)
            assert await tx.run_deliveries(kept) == []
