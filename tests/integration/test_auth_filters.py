"""Auth filters (the grammar `@auth.on` handlers return) mean the same in SQL, on both dialects,
as in Python: seeded random filters over random metadata select exactly the rows `matches` does.
Scopes add the organisation boundary."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from keel.auth.filters import FilterError, check_filter, matches
from keel.auth.scope import Scope
from keel.settings import Settings
from keel.storage import make_storage
from keel.storage.base import Storage

KEYS = ["owner", "team", "tags", "n", "flag", "nested"]
SCALARS: list[Any] = ["alice", "bob", "", "a'b", 'q"x', 1, 2, 2.5, 0, True, False, None]


def _value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(SCALARS)
    if roll < 0.9:
        return rng.sample(SCALARS[:9], rng.randint(0, 4))
    return {"k": rng.choice(SCALARS)}


def _metadata(rng: random.Random) -> dict[str, Any]:
    return {k: _value(rng) for k in rng.sample(KEYS, rng.randint(0, len(KEYS)))}


def _leaf(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rng.sample(KEYS, rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.4:
            out[key] = rng.choice(SCALARS)
        elif roll < 0.6:
            out[key] = {"$eq": _value(rng)}
        elif roll < 0.8:
            out[key] = {"$contains": rng.choice(SCALARS[:9])}
        else:
            out[key] = {"$contains": rng.sample(SCALARS[:9], rng.randint(1, 2))}
    return out


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.35:
        op = rng.choice(["$or", "$and"])
        return {op: [_filter(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    return _leaf(rng)


async def _storage(database_url: str) -> Storage:
    storage = make_storage(Settings(database=database_url))
    await storage.open()
    return storage


async def _insert(storage: Storage, rows: Sequence[tuple[str, str | None, dict[str, Any]]]) -> None:
    async with storage.tx() as tx:
        for thread_id, org, metadata in rows:
            now = "2026-01-01T00:00:00+00:00"
            await tx.insert_thread(
                {
                    "thread_id": thread_id,
                    "created_at": now,
                    "updated_at": now,
                    "metadata": metadata,
                    "status": "idle",
                    "org": org,
                }
            )


async def _selected(storage: Storage, scope: Scope) -> set[str]:
    async with storage.read() as tx:
        where, params = scope.where(tx.dialect)
        rows = await tx.search_threads(where, params, "thread_id", 10_000, 0)
    return {r["thread_id"] for r in rows}


async def test_filters_select_in_sql_what_they_match_in_python(database_url: str) -> None:
    rng = random.Random(11)
    rows = [(str(uuid.uuid4()), None, _metadata(rng)) for _ in range(80)]
    storage = await _storage(database_url)
    try:
        await _insert(storage, rows)
        for _ in range(150):
            filt = check_filter(_filter(rng))
            expected = {tid for tid, _, meta in rows if matches(meta, filt)}
            assert await _selected(storage, Scope(filters=(filt,))) == expected, filt
    finally:
        await storage.close()


async def test_a_bound_scope_sees_its_org_only(database_url: str) -> None:
    rows = [
        (str(uuid.uuid4()), org, {"owner": owner})
        for org in ("acme", "globex", None)
        for owner in ("alice", "bob")
    ]
    storage = await _storage(database_url)
    try:
        await _insert(storage, rows)
        for org in ("acme", "globex", None):
            for shared in (False, True):
                scope = Scope(bound=True, org=org, shared=shared)
                want = {t for t, o, _ in rows if o == org or (shared and o is None)}
                assert await _selected(storage, scope) == want
                assert {t for t, o, m in rows if scope.admits({"org": o, "metadata": m})} == want
        narrowed = Scope(bound=True, org="acme").narrowed({"owner": "bob"})
        assert await _selected(storage, narrowed) == {
            t for t, o, m in rows if o == "acme" and m["owner"] == "bob"
        }
        # An unbound scope ignores organisations (no built-in auth).
        assert await _selected(storage, Scope()) == {t for t, _, _ in rows}
    finally:
        await storage.close()


@pytest.mark.parametrize(
    "bad",
    [
        "owner",
        {"$or": [{"a": 1}]},
        {"$or": {"a": 1}},
        {"$nor": [{"a": 1}, {"b": 2}]},
        {"a": {"$gt": 1}},
        {"a": {}},
        {"$and": [{"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"d": 1}]},
    ],
)
def test_invalid_filters_are_refused(bad: Any) -> None:
    with pytest.raises(FilterError):
        check_filter(bad)


def test_filter_keys_that_could_break_out_of_a_json_path_are_refused() -> None:
    from keel.errors import InvalidInput
    from keel.storage.queries.base import Dialect

    with pytest.raises(InvalidInput, match="unsupported filter key"):
        Dialect().json_equals("metadata", 'a"); DROP TABLE threads; --', 1)
