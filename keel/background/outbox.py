"""The webhook outbox: a delivery row written in a run's terminal transaction (an `Endings`
hook), and the loop that delivers it, in every Keel process (API servers and workers alike).

- Durable: the row commits with the run's outcome, or neither does; a crash before delivery
  loses nothing (the row waits), a crash during an attempt repeats the attempt.
- One sender at a time: an attempt is claimed with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED;
  SQLite: one process, one writer), renewed every heartbeat while the attempt lasts, so two
  processes never send the same attempt at once. A process that dies mid-attempt leaves its
  lease to run out (PostgreSQL: `lease_seconds`) or is known dead at the next start (SQLite),
  and the attempt is made again with the same `webhook-id`.
- At least once: a 2xx answer marks the delivery `delivered`; anything else (another status, a
  redirect, which is never followed, a timeout, a refused address) is retried with exponential
  backoff and jitter until `webhooks.retry.window_seconds` after the run ended, then `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import httpx

from keel import clock
from keel.background import signing
from keel.background.webhooks import Refused, Target, frozen_body, resolve
from keel.endings import RunEnd
from keel.metrics.recorder import Recorder
from keel.serde import dumps
from keel.settings.webhooks import RetryPolicy, WebhookSettings
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

log = logging.getLogger("keel.webhooks")
FENCE_SHARE = 0.6  # attempts whose lease went unrenewed this share of it are cut
RECHECK = 0.2  # a second look after a local run ended (its transaction may not be visible yet)


def backoff(attempts: int, retry: RetryPolicy, rand: random.Random) -> float:
    """Seconds before the next attempt after `attempts` failed ones: the exponential step
    (initial doubling, capped), half of it fixed and half random (jitter)."""
    step = min(retry.max_seconds, retry.initial_seconds * 2.0 ** min(attempts - 1, 60))
    return step / 2 + rand.uniform(0, step / 2)


def pinned_request(client: httpx.AsyncClient, target: Target, body: bytes, headers: Row) -> Any:
    """A POST to the checked address of `target` (not to whatever the name resolves to by
    now), with the URL's host in `Host` and, over TLS, in SNI and certificate checks."""
    url = httpx.URL(target.url)
    extensions = {"sni_hostname": target.host} if url.scheme == "https" else {}
    return client.build_request(
        "POST",
        url.copy_with(host=target.ip),
        content=body,
        headers={"host": url.netloc.decode("ascii"), **headers},
        extensions=extensions,
    )


class Outbox:
    """The outbox hook and delivery loop of one process."""

    def __init__(
        self,
        storage: Storage,
        settings: WebhookSettings,
        *,
        enabled: bool,
        holder: str,
        poll_seconds: float,
        lease_seconds: float,
        recorder: Recorder | None = None,
    ) -> None:
        self.storage = storage
        self.recorder = recorder or Recorder()  # keel.metrics
        self.settings = settings
        self.enabled = enabled  # `http.disable_webhooks` false
        self.holder = holder
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.headers = settings.resolved_headers()
        self.key = settings.signing_key()
        self.rand = random.Random()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}  # run id -> its attempt
        self._secured = 0.0  # when the leases of the attempts in flight were last renewed
        self._client: httpx.AsyncClient | None = None
        self._stopping = False

    # ------------------------------------------------------------ the hook
    async def record(self, tx: Tx, end: RunEnd) -> None:
        """`Endings` hook: the run's delivery row, in its terminal transaction."""
        url = (end.run.get("kwargs") or {}).get("webhook")
        if not url:
            return
        run_id = end.run["run_id"]
        if not self.enabled:
            log.info("run %s: webhook not called: http.disable_webhooks is set", run_id)
            return
        now = clock.now()
        row = {
            "run_id": run_id,
            "thread_id": end.run["thread_id"],
            "webhook_id": "msg_" + run_id.replace("-", ""),
            "url": url,
            "payload": frozen_body(end),
            "created_at": end.now,
            "next_attempt_at": now,
            "give_up_at": now + self.settings.retry.window_seconds,
        }
        await tx.insert_delivery(row)
        self.notify()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(RECHECK, self.notify)

    def notify(self) -> None:
        self._wakeup.set()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if not self.storage.shared:
            async with self.storage.tx() as tx:
                await tx.free_delivery_leases()
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=self.settings.timeout_seconds
        )
        self._loop = asyncio.create_task(self._run(), name="keel-webhooks")
        self._beat = asyncio.create_task(self._heartbeat(), name="keel-webhooks-lease")

    async def stop(self, grace: float) -> None:
        """Stop claiming; give attempts in flight `grace` seconds, then cut them (their leases
        run out, and they are made again)."""
        self._stopping = True
        self._wakeup.set()
        if self._loop is not None:  # a claim hanging on an absent database is cut
            _, hanging = await asyncio.wait([self._loop], timeout=grace)
            for task in hanging:
                task.cancel()
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=grace)
        for task in list(self._inflight.values()):
            task.cancel()
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=1.0)
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            free = self.settings.concurrency - len(self._inflight)
            if free > 0:
                for row in await self._claim(free):
                    self._spawn(row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)

    async def _claim(self, limit: int) -> list[Row]:
        now = clock.now()
        until = now + self.lease_seconds
        try:
            async with self.storage.tx() as tx:
                return await tx.claim_deliveries(self.holder, now, clock.iso(now), until, limit)
        except Exception as exc:  # the database away: try again at the next poll
            log.warning("claiming webhook deliveries failed: %s", exc)
            return []

    def _spawn(self, row: Row) -> None:
        run_id = row["run_id"]
        task = asyncio.create_task(self._deliver(row), name=f"keel-webhook-{run_id}")
        self._inflight[run_id] = task
        self._secured = self._secured or clock.now()
        task.add_done_callback(lambda _: self._done(run_id))

    def _done(self, run_id: str) -> None:
        self._inflight.pop(run_id, None)
        if not self._inflight:
            self._secured = 0.0
        self._wakeup.set()  # a slot is free

    async def _heartbeat(self) -> None:
        """Renew the leases of the attempts in flight; cut them when that failed for too long
        (another process may take them over once the leases run out)."""
        every = min(self.lease_seconds / 6, 0.5)
        while True:
            await asyncio.sleep(every)
            if not self._inflight:
                continue
            now = clock.now()
            try:
                async with self.storage.tx() as tx:
                    await tx.renew_delivery_leases(
                        self.holder, list(self._inflight), now + self.lease_seconds
                    )
                self._secured = now
            except Exception as exc:
                log.warning("renewing webhook leases failed: %s", exc)
                if now - self._secured > self.lease_seconds * FENCE_SHARE:
                    for task in self._inflight.values():
                        task.cancel()

    # ------------------------------------------------------------ one attempt
    async def _deliver(self, row: Row) -> None:
        started = time.monotonic()
        code, error = await self._attempt(row)
        ms = (time.monotonic() - started) * 1000
        try:
            outcome = await self._record(row, code, error, ms)
            self.recorder.webhook_attempt(outcome, ms / 1000)
        except Exception as exc:  # the lease runs out; the attempt is made again
            log.warning("webhook %s: recording the attempt failed: %s", row["webhook_id"], exc)

    async def _attempt(self, row: Row) -> tuple[int | None, str | None]:
        """POST the body once: (status code, None) on 2xx, else (code or None, what failed)."""
        body = self._body(row["payload"])
        timeout = self.settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                target = await resolve(row["url"], self.settings.url)
                return await self._post(target, row["webhook_id"], body)
        except Refused as exc:
            return None, str(exc.detail)
        except TimeoutError:
            return None, f"timed out after {timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _post(
        self, target: Target, msg_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        assert self._client is not None
        sent = signing.headers(self.key, msg_id, int(clock.now()), body)
        headers = {**self.headers, "content-type": "application/json", **sent}
        request = pinned_request(self._client, target, body, headers)
        response = await self._client.send(request, stream=True)
        await response.aclose()
        code = response.status_code
        if 200 <= code < 300:
            return code, None
        if response.is_redirect:
            where = response.headers.get("location", "")
            return code, f"HTTP {code}: redirect to {where!r} not followed"
        return code, f"HTTP {code}"

    def _body(self, payload: Row) -> bytes:
        body = {**payload, "webhook_sent_at": clock.iso()}
        fields = self.settings.allowed_fields
        if fields:
            body = {k: v for k, v in body.items() if k in fields}
        return dumps(body)

    async def _record(self, row: Row, code: int | None, error: str | None, ms: float) -> str:
        """Write the attempt's outcome: `delivered`, `retry` (another attempt is due) or
        `failed` (given up)."""
        wid, run_id, n = row["webhook_id"], row["run_id"], row["attempts"]
        now = clock.now()
        async with self.storage.tx() as tx:
            if error is None:
                assert code is not None
                await tx.delivered(run_id, code, clock.iso(now))
                log.info(
                    "webhook %s (run %s) attempt %d: delivered, HTTP %d, %.0f ms",
                    wid,
                    run_id,
                    n,
                    code,
                    ms,
                )
                return "delivered"
            next_at: float | None = now + backoff(n, self.settings.retry, self.rand)
            if next_at is not None and next_at > row["give_up_at"]:
                next_at = None
            outcome = {"code": code, "error": error}
            await tx.attempt_failed(run_id, self.holder, outcome, next_at, clock.iso(now))
        self._log_failure(row, error, next_at, ms)
        if next_at is None:
            return "failed"
        asyncio.get_running_loop().call_later(max(0.0, next_at - now), self.notify)
        return "retry"

    @staticmethod
    def _log_failure(row: Row, error: str, next_at: float | None, ms: float) -> None:
        wid, run_id, n = row["webhook_id"], row["run_id"], row["attempts"]
        if next_at is None:
            log.warning(
                "webhook %s (run %s) attempt %d failed (%s, %.0f ms); giving up: failed",
                wid,
                run_id,
                n,
                error,
                ms,
            )
        else:
            log.warning(
                "webhook %s (run %s) attempt %d failed (%s, %.0f ms); retry in %.1f s",
                wid,
                run_id,
                n,
                error,
                ms,
                next_at - clock.now(),
            )
