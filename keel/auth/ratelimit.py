"""Requests per second: a token bucket per subject (an organisation, an API key), kept as GCRA.

GCRA (the generic cell rate algorithm) stores a token bucket as one number, its theoretical
arrival time `tat`: a bucket of `burst` tokens refilled at `rate` per second (one every
`step = 1/rate` seconds) holds `burst - max(tat - now, 0) / step` tokens at `now`, and taking
`n` tokens moves `tat` to `max(tat, now) + n * step`. A bucket never seen is full.

`MemoryLimiter` keeps the buckets in this process (SQLite: one process per database): exact.

`SqlLimiter` keeps them in the `quota_rates` table (PostgreSQL), shared by every process. A
process does not ask the database for every request: it leases a few tokens at a time (one
upsert) and spends them locally. The lease size follows the process's own traffic: it doubles
while leases get used up, halves when one lapses unused, between 1 and `rate * LEASE_SECONDS`
(at most the burst); a lease lapses `LEASE_SECONDS` after it was granted. A refusal is
remembered until a whole lease is due, so refusals cost no statement, and a subject held at its
limit costs one statement per lease, not per token.

Bounds, over any window of W seconds: a subject is admitted at most
`burst + rate * (W + LEASE_SECONDS)` requests (each token is granted once, from the one bucket,
and spent within LEASE_SECONDS of its grant): at most LEASE_SECONDS worth of its rate over an
exact bucket. Tokens lost to leases that lapse unused: at most one lease per process per lapse.
A refusal's wait can be up to LEASE_SECONDS longer than the bucket's own, which `Retry-After`
(whole seconds, at least 1) does not show. A busy subject costs a process about
`1 / LEASE_SECONDS` statements a second; one whose `rate * LEASE_SECONDS` is under 2 costs one
per admitted request (its traffic is that low anyway). Time is each process's clock: clocks
apart by s seconds can admit up to `rate * s` more.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

from keel import clock
from keel.settings.quotas import RateLimit
from keel.storage.base import Storage

PRUNE_AT = 10_000  # subjects kept in memory before the idle ones are dropped
# Seconds: float rounding (epoch seconds in a double: ulps of 2.4e-7 s) at an exact boundary
# does not refuse a request that is due.
EPS = 1e-5
LEASE_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Rate(RateLimit):
    """A configured rate limit, with the bucket arithmetic."""

    @classmethod
    def of(cls, limit: RateLimit) -> Rate:
        return cls(limit.per_second, limit.burst)

    @property
    def step(self) -> float:
        return 1.0 / self.per_second

    def tokens(self, tat: float | None, now: float) -> float:
        """What the bucket holds at `now` (rounding forgiven: up to EPS seconds early)."""
        return self.burst - max((tat if tat is not None else now) - now - EPS, 0.0) / self.step

    def wait(self, tat: float | None, now: float, tokens: int = 1) -> float:
        """Seconds until the bucket holds `tokens`."""
        return max(tokens - self.tokens(tat, now), 0.0) * self.step

    @property
    def max_lease(self) -> int:
        return max(1, min(self.burst, math.floor(self.per_second * LEASE_SECONDS)))


@dataclasses.dataclass(frozen=True)
class Bucket:
    """One subject a request draws on: `name` keys its state, `label` names it in a refusal."""

    name: str
    label: str
    rate: Rate


@dataclasses.dataclass(frozen=True)
class Refusal:
    bucket: Bucket
    wait: float  # seconds until the same request could be admitted

    @property
    def detail(self) -> str:
        rate = self.bucket.rate
        return (
            f"Rate limit exceeded for {self.bucket.label}: {rate.per_second:g} requests per "
            f"second (burst {rate.burst})"
        )


class MemoryLimiter:
    """Buckets in this process's memory. A request draws on all its buckets or on none."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._tat: dict[str, float] = {}
        self._prune_at = PRUNE_AT

    async def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
        now = self._now()
        for bucket in buckets:
            tat = self._tat.get(bucket.name)
            if bucket.rate.tokens(tat, now) < 1:
                return Refusal(bucket, bucket.rate.wait(tat, now))
        for bucket in buckets:
            tat = self._tat.get(bucket.name, now)
            self._tat[bucket.name] = max(tat, now) + bucket.rate.step
        if len(self._tat) > self._prune_at:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again (a missing bucket is a full one)."""
        self._tat = {name: tat for name, tat in self._tat.items() if tat > now}
        self._prune_at = max(PRUNE_AT, 2 * len(self._tat))


# Lease up to k tokens from one bucket. A new row is a full bucket: it grants min(k, burst).
# The grant, G: the whole tokens the bucket holds (as `Rate.tokens`), at most k.
_GRANT = (
    "LEAST(?::int, GREATEST(FLOOR(?::float8 - GREATEST(q.tat - ?::float8, 0) / ?::float8), "
    "0))::int"
)
_LEASE = (
    "INSERT INTO quota_rates AS q (subject, tat, granted) {source} "
    "ON CONFLICT (subject) DO UPDATE SET "
    f"granted = {_GRANT}, tat = GREATEST(q.tat, ?::float8) + {_GRANT} * ?::float8 "
    "RETURNING q.subject, q.tat, q.granted"
)
ONE_BUCKET = _LEASE.format(source="VALUES (?::text, ?::float8, ?::int)")
# Two buckets: the second (the organisation) is drawn on only if the first (the key) granted
# tokens, so that a key over its own limit cannot spend its organisation's requests.
TWO_BUCKETS = (
    f"WITH first AS ({ONE_BUCKET}), second AS ("
    + _LEASE.format(
        source="SELECT ?::text, ?::float8, ?::int WHERE (SELECT granted FROM first) > 0"
    )
    + ") SELECT subject, tat, granted FROM first UNION ALL SELECT subject, tat, granted FROM second"
)


def _lease_params(bucket: Bucket, size: int, now: float) -> list[object]:
    rate = bucket.rate
    first = min(size, rate.burst)
    grant = [size, rate.burst, now + EPS, rate.step]
    return [bucket.name, now + first * rate.step, first, *grant, now, *grant, rate.step]


@dataclasses.dataclass(eq=False)
class Lease:
    """Tokens of one shared bucket this process took and has not spent yet."""

    tokens: int = 0
    until: float = 0.0  # the tokens lapse then
    size: int = 1  # tokens asked for at the next lease
    refused_until: float = 0.0  # the bucket holds no token before then

    def usable(self, now: float) -> bool:
        return self.tokens > 0 and now < self.until

    def renew(self, granted: int, now: float, rate: Rate) -> None:
        """Take `granted` new tokens; size the next lease after how the last one went."""
        lapsed = now >= self.until
        if lapsed and self.tokens > 0:  # some lapsed unused: ask for fewer
            self.size = max(1, self.size // 2)
        elif not lapsed:  # used up within its time: ask for more
            self.size = min(self.size * 2, rate.max_lease)
        # Concurrent requests of this process may have leased meanwhile: add up.
        self.tokens = granted if lapsed else self.tokens + granted
        self.until = now + LEASE_SECONDS


class SqlLimiter:
    """Buckets in the `quota_rates` table (PostgreSQL), shared by every process, leased a few
    tokens at a time (see the module). Time is Keel's clock (`keel.clock.now`)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._leases: dict[str, Lease] = {}
        self._prune_at = PRUNE_AT

    async def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
        if len(buckets) > 2:
            raise ValueError("a request draws on at most two buckets (its key, its org)")
        now = clock.now()
        leases = [self._leases.setdefault(b.name, Lease()) for b in buckets]
        for bucket, lease in zip(buckets, leases, strict=True):
            if lease.refused_until > now:
                return Refusal(bucket, lease.refused_until - now)
        # This request's tokens are taken before any wait, so concurrent ones cannot spend them.
        held = [lease for lease in leases if lease.usable(now)]
        for lease in held:
            lease.tokens -= 1
        needed = [(b, lease) for b, lease in zip(buckets, leases, strict=True) if lease not in held]
        refusal = await self._lease(needed, now) if needed else None
        if refusal is not None:
            for lease in held:
                lease.tokens += 1
        if len(self._leases) > self._prune_at:
            self._prune(now)
        return refusal

    async def _lease(self, wanted: list[tuple[Bucket, Lease]], now: float) -> Refusal | None:
        """Lease tokens of each bucket, in order (a refusal stops there), and take one of each
        for this request unless one refused: then the first refusal."""
        sql = ONE_BUCKET if len(wanted) == 1 else TWO_BUCKETS
        params = [p for b, lease in wanted for p in _lease_params(b, lease.size, now)]
        async with self.storage.statements() as tx:
            rows = {row["subject"]: row for row in await tx.all(sql, params)}
        refusal = None
        for bucket, lease in wanted:
            row = rows.get(bucket.name)  # none for the org when the key refused
            if row is not None and row["granted"] == 0:
                # Until a whole lease is due (under 1 s: invisible in Retry-After's seconds),
                # so that a subject held at its rate costs a statement per lease, not per token.
                due = min(lease.size, bucket.rate.burst)
                wait = bucket.rate.wait(float(row["tat"]), now, due)
                lease.refused_until = now + wait
                refusal = refusal or Refusal(bucket, wait)
        for bucket, lease in wanted:
            row = rows.get(bucket.name)
            if row is not None and row["granted"] > 0:
                lease.renew(int(row["granted"]) - (refusal is None), now, bucket.rate)
        return refusal

    def _prune(self, now: float) -> None:
        """Forget subjects with nothing usable or remembered."""
        self._leases = {
            name: lease
            for name, lease in self._leases.items()
            if lease.usable(now) or lease.refused_until > now
        }
        self._prune_at = max(PRUNE_AT, 2 * len(self._leases))
