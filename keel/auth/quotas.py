"""Quotas per organisation and per API key (`auth.quotas`): requests per second, concurrent runs
and runs per day; a refusal is a 429 with `Retry-After`.

    "quotas": {
      "default": {"requests_per_second": 50, "burst": 100,
                  "concurrent_runs": 10, "runs_per_day": 10000},
      "orgs": {"acme": {"requests_per_second": 200, "runs_per_day": null}},
      "key_default": {"requests_per_second": 20},
      "keys": {"<key id>": {"concurrent_runs": 2}}
    }

`default` applies to each organisation (each has its own budget), `orgs` overrides it per
organisation, field by field (`null`: no limit). `key_default` and `keys` do the same for API
keys (a user authenticated by an API key carries its id as `key_id`); a request must pass both
its key's limits and its organisation's. Users without an organisation share one budget.

Requests per second: a token bucket per subject (`keel.auth.ratelimit`), in memory on SQLite,
in the `quota_rates` table on PostgreSQL. Runs: checked inside the transaction that creates the
run (`admit_run`), after the run is inserted: the subject's row in `quota_runs` is upserted
first (it counts today's runs and, on PostgreSQL, locks the subject until the transaction ends,
so two processes cannot both take the last slot), then the subject's pending and running runs
are counted. A refusal rolls the whole creation back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from keel import clock
from keel.auth.ratelimit import Bucket, MemoryLimiter, Rate, Refusal, SqlLimiter
from keel.auth.user import RUN_USER_PATH, User, run_user
from keel.errors import TooManyRequests
from keel.settings import AuthSettings
from keel.settings.quotas import Limits, QuotaConfig, check_quotas
from keel.storage.base import Storage
from keel.storage.tx import Row, Tx

BUSY_RETRY_AFTER = 5.0  # seconds: a refusal for concurrent runs (a run may end any moment)
DAY = 86400.0
KEY_FIELD = "key_id"  # the field of a User (and of a run's user) naming its API key
# Where a run carries its user (as the reference): kwargs.config.configurable.


class Limiter(Protocol):
    """What `Quotas` needs of a rate limiter (`MemoryLimiter`, `SqlLimiter`)."""

    async def admit(self, buckets: Sequence[Bucket]) -> Refusal | None: ...


# ----------------------------------------------------------------------- subjects
def org_name(org: str | None) -> str:
    return "org" if org is None else f"org:{org}"


def org_label(org: str | None) -> str:
    return "users without an organisation" if org is None else f"organisation '{org}'"


def user_key(user: User) -> str | None:
    """The id of the API key `user` authenticated with (None: not an API key)."""
    key = user.fields.get(KEY_FIELD)
    return None if key is None else str(key)


def run_subjects(run: Row) -> tuple[str | None, str | None]:
    """The organisation and API key a run counts against: its `org`, and the key id of the
    user it carries (`kwargs.config.configurable.langgraph_auth_user.key_id`)."""
    key = run_user(run).get(KEY_FIELD)
    return run.get("org"), None if key is None else str(key)


@dataclasses.dataclass(frozen=True)
class RunSubject:
    """An organisation or a key, as run creation counts it."""

    name: str
    label: str
    limits: Limits
    org: str | None
    key: str | None = None


# ------------------------------------------------------------------------- quotas
class Quotas:
    """The `Quotas` hook of `keel.auth.guard.Guard`."""

    def __init__(self, config: QuotaConfig, limiter: Limiter) -> None:
        self.config = config
        self.limiter = limiter

    async def admit_request(self, user: User) -> None:
        buckets = self._buckets(user.org, user_key(user))
        if not buckets:
            return
        refusal = await self.limiter.admit(buckets)
        if refusal is not None:
            raise TooManyRequests(refusal.detail, refusal.wait)

    def _buckets(self, org: str | None, key: str | None) -> list[Bucket]:
        """The key's bucket first: the organisation's is drawn on only when the key admits."""
        out = []
        if key is not None:
            limit = self.config.for_key(key).rate
            if limit is not None:
                out.append(Bucket(f"key:{key}", f"API key '{key}'", Rate.of(limit)))
        limit = self.config.for_org(org).rate
        if limit is not None:
            out.append(Bucket(org_name(org), org_label(org), Rate.of(limit)))
        return out

    async def admit_run(self, tx: Tx, run: Row) -> None:
        """Inside the transaction that just inserted `run`: raise TooManyRequests (and so roll
        the creation back) when its organisation or key is at its concurrent or daily limit."""
        org, key = run_subjects(run)
        subjects = [RunSubject(org_name(org), org_label(org), self.config.for_org(org), org)]
        if key is not None:
            limits = self.config.for_key(key)
            subjects.append(RunSubject(f"key:{key}", f"API key '{key}'", limits, org, key))
        now = clock.now()
        # Always in the same order, so that two creations never wait on each other's lock.
        for subject in sorted(subjects, key=lambda s: s.name):
            if subject.limits.limits_runs:
                await _admit_run(tx, subject, now)


async def _admit_run(tx: Tx, subject: RunSubject, now: float) -> None:
    limits = subject.limits
    today = await count_today(tx, subject.name, clock.iso(now)[:10])
    if limits.runs_per_day is not None and today > limits.runs_per_day:
        raise TooManyRequests(
            f"Run quota exceeded for {subject.label}: {limits.runs_per_day} runs per day (UTC)",
            DAY - now % DAY,
        )
    if limits.concurrent_runs is not None:
        active = await count_active(tx, subject.org, subject.key)
        if active > limits.concurrent_runs:
            raise TooManyRequests(
                f"Run quota exceeded for {subject.label}: {limits.concurrent_runs} concurrent "
                "runs (pending or running)",
                BUSY_RETRY_AFTER,
            )


async def count_today(tx: Tx, subject: str, day: str) -> int:
    """Count one more run of `subject` on `day` (UTC, YYYY-MM-DD); the count, this one included.
    On PostgreSQL the upsert locks the subject's row until the transaction ends. A day never
    goes back: a process whose clock lags counts into the latest day seen."""
    row = await tx.one(
        "INSERT INTO quota_runs (subject, on_day, runs) VALUES (?, ?, 1) "
        "ON CONFLICT (subject) DO UPDATE SET "
        "runs = CASE WHEN quota_runs.on_day < excluded.on_day THEN 1 "
        "ELSE quota_runs.runs + 1 END, "
        "on_day = CASE WHEN quota_runs.on_day < excluded.on_day THEN excluded.on_day "
        "ELSE quota_runs.on_day END "
        "RETURNING runs",
        [subject, day],
    )
    assert row is not None
    return int(row["runs"])


async def count_active(tx: Tx, org: str | None, key: str | None) -> int:
    """Pending and running runs of an organisation (of one of its keys, with `key`)."""
    where = "status IN ('pending','running') AND "
    params: list[Any] = []
    where += "org IS NULL" if org is None else "org = ?"
    params += [] if org is None else [org]
    if key is not None:
        where += f" AND {_run_key_sql(tx)} = ?"
        params.append(key)
    row = await tx.one(f"SELECT COUNT(*) AS n FROM runs WHERE {where}", params)
    return int(row["n"]) if row else 0


def _run_key_sql(tx: Tx) -> str:
    """SQL for the key id of the user a run carries (see `run_subjects`)."""
    path = [*RUN_USER_PATH, KEY_FIELD]
    if tx.dialect.name == "postgres":
        return "kwargs #>> '{" + ",".join(path) + "}'"
    return "json_extract(kwargs, '$." + ".".join(path) + "')"


def build_quotas(settings: AuthSettings, storage: Storage) -> Quotas | None:
    """The quotas `auth.quotas` asks for (None: none); shared by every process on PostgreSQL."""
    config = check_quotas(settings.quotas, settings.builtin)
    if config is None:
        return None
    limiter: Limiter = SqlLimiter(storage) if storage.shared else MemoryLimiter()
    return Quotas(config, limiter)
