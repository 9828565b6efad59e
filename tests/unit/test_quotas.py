"""Quotas (keel/auth/quotas.py, keel/auth/ratelimit.py): the `auth.quotas` grammar, the token
buckets (in memory and in PostgreSQL, on Keel's clock under the test's control: no sleeping), and
the run checks inside the creation transaction on real databases."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from keel import clock
from keel.auth.guard import AuditEntry, Guard
from keel.auth.handlers import Credentials
from keel.auth.quotas import DAY, Quotas, build_quotas, count_active, run_subjects
from keel.auth.ratelimit import (
    LEASE_SECONDS,
    Bucket,
    Lease,
    MemoryLimiter,
    Rate,
    Refusal,
    SqlLimiter,
)
from keel.auth.user import User
from keel.errors import ConfigError, TooManyRequests
from keel.settings import AuthSettings, Settings, load_settings
from keel.settings.quotas import Limits, RateLimit, parse_quotas
from keel.storage import make_storage
from keel.storage.base import Storage
from keel.storage.tx import Row
from tests.conftest import database_for
from tests.support.clock import FakeClock
from tests.support.postgres import PgCluster

Limiter = MemoryLimiter | SqlLimiter


# ------------------------------------------------------------------ configuration
def test_org_overrides_inherit_the_default_field_by_field() -> None:
    config = parse_quotas(
        {
            "default": {"requests_per_second": 50, "burst": 100, "concurrent_runs": 10},
            "orgs": {"acme": {"requests_per_second": 200, "concurrent_runs": None}},
            "key_default": {"requests_per_second": 2.5},
            "keys": {"k1": {"runs_per_day": 3}},
        }
    )
    assert config.for_org("other") == Limits(RateLimit(50, 100), 10, None)
    assert config.for_org(None) == config.for_org("other")
    # `null` lifts a default limit; what the override leaves out is the default's.
    assert config.for_org("acme") == Limits(RateLimit(200, 100), None, None)
    # Without `burst`, a bucket holds one second's worth (at least one request).
    assert config.for_key("k2") == Limits(RateLimit(2.5, 3), None, None)
    assert config.for_key("k1") == Limits(RateLimit(2.5, 3), None, 3)
    half = parse_quotas({"default": {"requests_per_second": 0.5}})
    assert half.org_default.rate == RateLimit(0.5, 1)
    assert parse_quotas({}).for_org("x") == Limits()


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"orgz": {}}, "unsupported keys ['orgz']"),
        ({"default": []}, "auth.quotas.default must be an object"),
        ({"orgs": {"a": 5}}, "auth.quotas.orgs.a must be an object"),
        ({"default": {"rps": 1}}, "auth.quotas.default: unsupported keys ['rps']"),
        ({"default": {"requests_per_second": 0}}, "requests_per_second must be a number > 0"),
        ({"default": {"requests_per_second": -1}}, "requests_per_second must be a number > 0"),
        ({"default": {"requests_per_second": True}}, "requests_per_second must be a number"),
        ({"default": {"requests_per_second": "5"}}, "requests_per_second must be a number"),
        ({"keys": {"k": {"burst": 2}}}, "auth.quotas.keys.k.burst needs requests_per_second"),
        (
            {"default": {"requests_per_second": 1, "burst": 0}},
            "auth.quotas.default.burst must be an integer >= 1",
        ),
        ({"orgs": {"a": {"concurrent_runs": -1}}}, "orgs.a.concurrent_runs must be an integer"),
        ({"key_default": {"runs_per_day": 1.5}}, "key_default.runs_per_day must be an integer"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_it(raw: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_quotas(raw)
    assert names in err.value.detail


def test_a_config_file_with_bad_quotas_is_refused_when_loaded(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    bad = {"default": {"runs_per_day": -1}}
    for auth, error in (
        ({"api_keys": True, "quotas": bad}, "auth.quotas.default.runs_per_day"),
        ({"path": "./auth.py:auth", "quotas": {}}, "auth.quotas needs organisations"),
    ):
        config.write_text(json.dumps({"graphs": {}, "auth": auth}))
        with pytest.raises(ConfigError, match=error):
            load_settings(config)
    config.write_text(json.dumps({"graphs": {}, "auth": {"api_keys": True, "quotas": {}}}))
    assert load_settings(config).auth.quotas == {}


async def test_quotas_need_built_in_auth(tmp_path: Path) -> None:
    storage = make_storage(Settings(database=f"sqlite:///{tmp_path / 'k.db'}"))
    assert build_quotas(AuthSettings(api_keys=True), storage) is None
    quotas = {"default": {"concurrent_runs": 1}}
    with pytest.raises(ConfigError, match="needs organisations"):
        build_quotas(AuthSettings(path="./auth.py:auth", quotas=quotas), storage)
    built = build_quotas(AuthSettings(api_keys=True, quotas=quotas), storage)
    assert built is not None and isinstance(built.limiter, MemoryLimiter)


# ----------------------------------------------------------------- token buckets
@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch)


async def _open(url: str) -> Storage:
    storage = make_storage(Settings(database=url))
    await storage.open()
    return storage


@pytest.fixture(params=["memory", "postgres"])
async def limiter(
    request: pytest.FixtureRequest, fake_clock: FakeClock
) -> AsyncIterator[MemoryLimiter | SqlLimiter]:
    """The same buckets kept in memory (SQLite servers) and in PostgreSQL."""
    if request.param == "memory":
        yield MemoryLimiter(now=clock.now)
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    storage = await _open(cluster.create_database())
    try:
        yield SqlLimiter(storage)
    finally:
        await storage.close()


def bucket(name: str, per_second: float, burst: int) -> Bucket:
    return Bucket(name, name, Rate(per_second, burst))


async def test_a_full_bucket_admits_its_burst_then_one_request_per_step(
    limiter: Limiter, fake_clock: FakeClock
) -> None:
    org = [bucket("org:a", 2.0, 3)]  # a request every 0.5 s, 3 at once
    for _ in range(3):
        assert await limiter.admit(org) is None
    refusal = await limiter.admit(org)
    assert refusal is not None and refusal.wait == pytest.approx(0.5, abs=1e-4)
    assert "2 requests per second (burst 3)" in refusal.detail
    fake_clock.advance(0.3)
    refusal = await limiter.admit(org)
    assert refusal is not None and refusal.wait == pytest.approx(0.2, abs=1e-4)
    fake_clock.advance(0.2)
    assert await limiter.admit(org) is None  # one step passed: one more request
    assert await limiter.admit(org) is not None
    fake_clock.advance(10)  # idle: full again, never more than the burst
    for _ in range(3):
        assert await limiter.admit(org) is None
    assert await limiter.admit(org) is not None
    # Another subject has its own bucket.
    assert await limiter.admit([bucket("org:b", 2.0, 3)]) is None


async def test_a_key_over_its_limit_does_not_spend_its_organisations_requests(
    limiter: Limiter, fake_clock: FakeClock
) -> None:
    key, org = bucket("key:k", 0.001, 1), bucket("org:a", 0.001, 2)
    assert await limiter.admit([key, org]) is None
    for _ in range(5):
        refusal = await limiter.admit([key, org])
        assert refusal is not None and refusal.bucket == key
        assert refusal.wait == pytest.approx(1000.0, abs=1e-4)
    assert await limiter.admit([org]) is None  # the org's second request: still there
    refusal = await limiter.admit([org])
    assert refusal is not None and refusal.bucket == org


async def test_processes_sharing_a_database_draw_on_one_bucket(
    pg_cluster: PgCluster, fake_clock: FakeClock
) -> None:
    url = pg_cluster.create_database()
    one, two = await _open(url), await _open(url)
    try:
        org = [bucket("org:a", 0.001, 3)]
        assert await SqlLimiter(one).admit(org) is None
        assert await SqlLimiter(two).admit(org) is None
        assert await SqlLimiter(one).admit(org) is None
        assert await SqlLimiter(two).admit(org) is not None
        assert await SqlLimiter(one).admit(org) is not None
    finally:
        await one.close()
        await two.close()


class CountingLimiter(SqlLimiter):
    """Counts the statements (leases) it sends."""

    statements = 0

    async def _lease(self, wanted: list[tuple[Bucket, Lease]], now: float) -> Refusal | None:
        self.statements += 1
        return await super()._lease(wanted, now)


async def test_leased_tokens_add_up_to_the_bucket_and_a_refusal_is_remembered(
    pg_cluster: PgCluster, fake_clock: FakeClock
) -> None:
    """Two processes lease tokens of one bucket a few at a time: together they admit exactly
    what the bucket holds, with fewer statements than requests; once it is empty they refuse
    without asking the database until a lease is due."""
    url = pg_cluster.create_database()
    one, two = await _open(url), await _open(url)
    try:
        limiters = [CountingLimiter(one), CountingLimiter(two)]
        org = [bucket("org:a", 1000.0, 50)]  # leases of up to 50 (rate * LEASE_SECONDS = 100)
        assert await _offer(limiters, org, fake_clock, 200, 0.0) == 50
        sent = [limiter.statements for limiter in limiters]
        assert sum(sent) < 30
        for i in range(10):
            refusal = await limiters[i % 2].admit(org)
            assert refusal is not None and 0 < refusal.wait <= LEASE_SECONDS
        assert [limiter.statements for limiter in limiters] == sent
        fake_clock.advance(LEASE_SECONDS)  # full again (no more than the burst)
        assert await _offer(limiters, org, fake_clock, 200, 0.0) == 50
    finally:
        await one.close()
        await two.close()


async def test_leases_amortise_below_the_rate_and_stay_in_bounds_above_it(
    pg_cluster: PgCluster, fake_clock: FakeClock
) -> None:
    """Two processes share a bucket of 1000/s. Offered a quarter of that, every request is
    admitted with a statement for many requests. Then offered twice that for one second, at
    most burst + rate * (1 s + LEASE_SECONDS) are admitted, and no more statements than
    requests are sent (refusals are remembered)."""
    url = pg_cluster.create_database()
    one, two = await _open(url), await _open(url)
    try:
        limiters = [CountingLimiter(one), CountingLimiter(two)]
        org = [bucket("org:a", 1000.0, 50)]
        admitted = await _offer(limiters, org, fake_clock, 250, 0.004)
        assert admitted == 250
        assert sum(limiter.statements for limiter in limiters) < 60
        admitted = await _offer(limiters, org, fake_clock, 2000, 0.0005)
        assert 900 <= admitted <= 50 + 1000 * (1.0 + LEASE_SECONDS)
        assert sum(limiter.statements for limiter in limiters) < 2000
    finally:
        await one.close()
        await two.close()


async def _offer(
    limiters: list[CountingLimiter], org: list[Bucket], fake_clock: FakeClock, n: int, every: float
) -> int:
    """`n` requests `every` seconds, alternately to each limiter; how many were admitted."""
    admitted = 0
    for i in range(n):
        admitted += await limiters[i % 2].admit(org) is None
        fake_clock.advance(every)
    return admitted


async def test_memory_buckets_forget_subjects_that_are_full_again(fake_clock: FakeClock) -> None:
    limiter = MemoryLimiter(now=clock.now)
    limiter._prune_at = 3
    for name in ("a", "b", "c"):
        assert await limiter.admit([bucket(name, 1.0, 5)]) is None
    fake_clock.advance(2)  # a, b, c are full again
    assert await limiter.admit([bucket("d", 1.0, 5)]) is None
    assert await limiter.admit([bucket("e", 1.0, 5)]) is None
    assert set(limiter._tat) == {"d", "e"}  # pruned when the fourth arrived


async def test_admit_request_refuses_with_a_retry_after_header(fake_clock: FakeClock) -> None:
    config = parse_quotas(
        {
            "default": {"requests_per_second": 0.01, "burst": 2},
            "keys": {"k": {"requests_per_second": 0.5, "burst": 1}},
        }
    )
    quotas = Quotas(config, MemoryLimiter(now=clock.now))
    alice = User("alice", org="acme", fields={"key_id": "k"})
    await quotas.admit_request(alice)
    with pytest.raises(TooManyRequests) as err:
        await quotas.admit_request(alice)
    assert err.value.headers == {"Retry-After": "2"}
    assert "API key 'k'" in err.value.detail
    await quotas.admit_request(User("bob", org="acme"))  # the org's second request
    with pytest.raises(TooManyRequests) as err:
        await quotas.admit_request(User("bob", org="acme"))
    assert err.value.headers == {"Retry-After": "100"}
    assert "organisation 'acme'" in err.value.detail
    await quotas.admit_request(User("carol", org="other"))  # its own budget


# --------------------------------------------------------------------------- runs
@pytest.fixture
async def storage(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    opened = await _open(database_for(backend, request, tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


def run_row(org: str | None, key: str | None = None, status: str = "pending") -> Row:
    user = {"identity": "u", "org": org, **({"key_id": key} if key else {})}
    now = clock.iso()
    return {
        "run_id": str(uuid.uuid4()),
        "thread_id": str(uuid.uuid4()),
        "assistant_id": str(uuid.uuid4()),
        "created_at": now,
        "updated_at": now,
        "status": status,
        "metadata": {},
        "kwargs": {"config": {"configurable": {"langgraph_auth_user": user}}},
        "multitask_strategy": "enqueue",
        "org": org,
    }


async def create(storage: Storage, quotas: Quotas, run: Row) -> None:
    """What RunService.create does: insert, then ask the quotas, in one transaction."""
    async with storage.tx() as tx:
        await tx.insert_run(run)
        await quotas.admit_run(tx, run)


async def runs_of(storage: Storage, org: str) -> int:
    async with storage.read() as tx:
        return await count_active(tx, org, None)


def test_a_run_counts_against_its_org_and_the_key_of_its_user() -> None:
    assert run_subjects(run_row("acme", "k1")) == ("acme", "k1")
    assert run_subjects(run_row(None)) == (None, None)
    assert run_subjects({"run_id": "r", "kwargs": {"config": {}}}) == (None, None)


async def test_concurrent_runs_count_pending_and_running_runs(storage: Storage) -> None:
    quotas = Quotas(parse_quotas({"default": {"concurrent_runs": 2}}), MemoryLimiter())
    await create(storage, quotas, run_row("acme", status="running"))
    await create(storage, quotas, run_row("acme"))
    with pytest.raises(TooManyRequests) as err:
        await create(storage, quotas, run_row("acme"))
    assert "2 concurrent runs" in err.value.detail and err.value.headers["Retry-After"] == "5"
    assert await runs_of(storage, "acme") == 2  # the refused creation was rolled back
    await create(storage, quotas, run_row("other"))  # another org: its own slots
    async with storage.tx() as tx:  # one run ends: a slot frees up
        await tx.run("UPDATE runs SET status='success' WHERE org='acme' AND status='running'")
    await create(storage, quotas, run_row("acme"))
    await create(storage, quotas, run_row(None))  # no organisation: a budget of its own
    await create(storage, quotas, run_row(None))
    with pytest.raises(TooManyRequests, match="users without an organisation"):
        await create(storage, quotas, run_row(None))


async def test_a_keys_concurrent_runs_are_counted_among_its_orgs(storage: Storage) -> None:
    quotas = Quotas(parse_quotas({"keys": {"k1": {"concurrent_runs": 1}}}), MemoryLimiter())
    await create(storage, quotas, run_row("acme", "k1"))
    with pytest.raises(TooManyRequests, match="API key 'k1'"):
        await create(storage, quotas, run_row("acme", "k1"))
    await create(storage, quotas, run_row("acme", "k2"))
    await create(storage, quotas, run_row("acme"))


async def test_runs_per_day_start_again_at_utc_midnight(
    storage: Storage, fake_clock: FakeClock
) -> None:
    fake_clock.at = 1_800_000_000 // DAY * DAY + DAY - 100  # 100 s before a UTC midnight
    config = {"default": {"runs_per_day": 2}, "key_default": {"runs_per_day": 1}}
    quotas = Quotas(parse_quotas(config), MemoryLimiter())
    await create(storage, quotas, run_row("acme", status="success"))
    await create(storage, quotas, run_row("acme", "k1", status="success"))
    with pytest.raises(TooManyRequests) as err:
        await create(storage, quotas, run_row("acme", status="success"))
    assert "2 runs per day" in err.value.detail and err.value.headers["Retry-After"] == "100"
    with pytest.raises(TooManyRequests, match="API key 'k1': 1 runs per day"):
        await create(storage, quotas, run_row("other", "k1", status="success"))
    await create(storage, quotas, run_row("other", "k2", status="success"))
    fake_clock.advance(100)  # midnight
    await create(storage, quotas, run_row("acme", "k1", status="success"))
    await create(storage, quotas, run_row("acme", status="success"))
    with pytest.raises(TooManyRequests):
        await create(storage, quotas, run_row("acme", status="success"))
    # A process whose clock lags (yesterday) counts into today: the day never goes back.
    fake_clock.advance(-50)
    with pytest.raises(TooManyRequests):
        await create(storage, quotas, run_row("acme", status="success"))


@pytest.mark.backends("postgres")
async def test_the_last_slot_goes_to_one_of_two_concurrent_creations(storage: Storage) -> None:
    """Two transactions take the org's last slot at once: the second waits on the first's
    quota row and, once it committed, sees its run and is refused."""
    quotas = Quotas(parse_quotas({"default": {"concurrent_runs": 1}}), MemoryLimiter())
    async with storage.tx() as first:
        run = run_row("acme")
        await first.insert_run(run)
        await quotas.admit_run(first, run)
        second = asyncio.create_task(create(storage, quotas, run_row("acme")))
        await _waits_on_a_lock(storage, second)
    with pytest.raises(TooManyRequests):
        await second
    assert await runs_of(storage, "acme") == 1


async def _waits_on_a_lock(storage: Storage, task: asyncio.Task[None]) -> None:
    deadline = clock.now() + 60
    while clock.now() < deadline:
        assert not task.done(), "the second creation did not wait for the first"
        async with storage.read() as tx:
            row = await tx.one(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type='Lock' "
                "AND datname=current_database()"
            )
        if row and row["n"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the second creation never waited on a lock")


class Recorder:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


async def test_the_guard_audits_quota_refusals(storage: Storage, fake_clock: FakeClock) -> None:
    config = {"default": {"requests_per_second": 0.001, "burst": 1, "concurrent_runs": 0}}
    audit = Recorder()
    quotas = Quotas(parse_quotas(config), MemoryLimiter(now=clock.now))
    guard = Guard(AuthSettings(api_keys=True, quotas=config), audit=audit, quotas=quotas)
    await guard.authenticate(Credentials("GET", "/threads", []))
    with pytest.raises(TooManyRequests):
        await guard.authenticate(Credentials("GET", "/threads", []))
    run = run_row("acme")
    with pytest.raises(TooManyRequests):
        async with storage.tx() as tx:
            await tx.insert_run(run)
            await guard.admit_run(tx, run)
    await asyncio.gather(*guard._audits)  # recorded once the transaction is over
    assert [
        (e.action, e.outcome, e.identity, e.org, e.resource_id, e.status) for e in audit.entries
    ] == [
        ("quota.refused", "refused", "anonymous", None, None, 429),
        ("quota.refused", "refused", "u", "acme", run["run_id"], 429),
    ]
    assert "0 concurrent runs" in (audit.entries[1].detail or "")
