"""The cron API as the reference serves it: the Cron object, create errors, PATCH semantics
(empty body 400, `end_time: null` clears, metadata merged, run fields replaced one by one, the
next run recomputed for a new schedule or time zone only), search (filters, sort_by /
sort_order, select, pagination headers), count, delete. Every expectation was checked against
`langgraph dev` (KEEL_TEST_REFERENCE=1). Firing is tested without HTTP, under a fake clock
(tests/integration/test_cron_firing.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.helpers import system_id

CRON_KEYS = {
    "cron_id", "assistant_id", "thread_id", "user_id", "end_time", "schedule", "timezone",
    "payload", "next_run_date", "metadata", "on_run_completed", "enabled", "created_at",
    "updated_at",
}  # fmt: skip
PIPELINE = system_id("pipeline")


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _cron(http: httpx.AsyncClient, tag: str, **body: Any) -> dict[str, Any]:
    body = {"assistant_id": "pipeline", "schedule": "0 9 * * *", **body}
    body["metadata"] = {"test": tag, **body.get("metadata", {})}
    thread_id = body.pop("thread_id", None)
    path = f"/threads/{thread_id}/runs/crons" if thread_id else "/runs/crons"
    cron: dict[str, Any] = await _ok(await http.post(path, json=body))
    return cron


def local_hour(moment: str, tz: str) -> tuple[int, int]:
    at = datetime.fromisoformat(moment).astimezone(ZoneInfo(tz))
    return at.hour, at.minute


async def test_a_cron_is_returned_as_the_reference_returns_it(http: httpx.AsyncClient) -> None:
    tag = str(uuid.uuid4())
    cron = await _cron(http, tag, input={"x": 1}, timezone="Europe/Paris")
    assert set(cron) == CRON_KEYS
    assert (cron["assistant_id"], cron["thread_id"], cron["enabled"]) == (PIPELINE, None, True)
    assert (cron["on_run_completed"], cron["end_time"], cron["schedule"]) == (
        "delete",
        None,
        "0 9 * * *",
    )
    assert cron["payload"]["input"] == {"x": 1}
    assert local_hour(cron["next_run_date"], "Europe/Paris") == (9, 0)
    assert await _ok(await http.get(f"/runs/crons/{cron['cron_id']}")) == cron
    thread = await _ok(await http.post("/threads", json={}))
    bound = await _cron(http, tag, thread_id=thread["thread_id"], on_run_completed="keep")
    assert (bound["thread_id"], bound["on_run_completed"]) == (thread["thread_id"], None)
    kept = await _cron(http, tag, on_run_completed="keep", enabled=False)
    assert (kept["on_run_completed"], kept["enabled"]) == ("keep", False)


async def test_a_bad_cron_is_refused(http: httpx.AsyncClient) -> None:
    base = {"assistant_id": "pipeline", "schedule": "0 9 * * *"}
    for bad in ({"schedule": "every day"}, {"schedule": "61 * * * *"}, {"timezone": "Mars/Base"}):
        await _ok(await http.post("/runs/crons", json={**base, **bad}), 422)
    await _ok(await http.post("/runs/crons", json={**base, "assistant_id": str(uuid.uuid4())}), 404)
    missing = f"/threads/{uuid.uuid4()}/runs/crons"
    await _ok(await http.post(missing, json=base), 404)
    await _ok(await http.get(f"/runs/crons/{uuid.uuid4()}"), 404)
    await _ok(await http.patch(f"/runs/crons/{uuid.uuid4()}", json={"enabled": False}), 404)


async def test_patch_merges_as_the_reference(http: httpx.AsyncClient) -> None:
    tag = str(uuid.uuid4())
    cron = await _cron(
        http,
        tag,
        input={"x": 1, "keep": True},
        config={"tags": ["a"]},
        metadata={"m": 1},
        end_time="2099-01-01T00:00:00+00:00",
        timezone="Europe/Paris",
    )
    path = f"/runs/crons/{cron['cron_id']}"
    await _ok(await http.patch(path, json={}), 400)
    out = await _ok(await http.patch(path, json={"end_time": None, "metadata": {"k": 2}}))
    assert out["end_time"] is None
    assert {k: out["metadata"][k] for k in ("test", "m", "k")} == {"test": tag, "m": 1, "k": 2}
    assert out["next_run_date"] == cron["next_run_date"]
    out = await _ok(await http.patch(path, json={"input": {"y": 3}, "config": {"tags": ["b"]}}))
    assert out["payload"]["input"] == {"y": 3}  # replaced, not merged into
    assert out["payload"]["config"]["tags"] == ["b"]
    assert out["updated_at"] > cron["updated_at"]
    out = await _ok(await http.patch(path, json={"enabled": False}))
    assert (out["enabled"], out["next_run_date"]) == (False, cron["next_run_date"])
    out = await _ok(await http.patch(path, json={"enabled": True}))
    assert (out["enabled"], out["next_run_date"]) == (True, cron["next_run_date"])
    out = await _ok(await http.patch(path, json={"timezone": "America/New_York"}))
    assert local_hour(out["next_run_date"], "America/New_York") == (9, 0)
    out = await _ok(await http.patch(path, json={"schedule": "15 7 * * *"}))
    assert local_hour(out["next_run_date"], "America/New_York") == (7, 15)
    for bad in ({"schedule": "nope"}, {"timezone": "Mars/Base"}):
        await _ok(await http.patch(path, json=bad), 422)
    assert (await _ok(await http.get(path)))["schedule"] == "15 7 * * *"


async def test_patching_a_thread_crons_on_run_completed_is_stored(
    http: httpx.AsyncClient,
) -> None:
    """As the reference (the field has no effect on a thread's runs)."""
    thread = await _ok(await http.post("/threads", json={}))
    cron = await _cron(http, str(uuid.uuid4()), thread_id=thread["thread_id"])
    out = await _ok(
        await http.patch(f"/runs/crons/{cron['cron_id']}", json={"on_run_completed": "keep"})
    )
    assert out["on_run_completed"] == "keep"


async def test_search_filters_sorts_selects_and_pages(http: httpx.AsyncClient) -> None:
    tag = str(uuid.uuid4())
    thread = await _ok(await http.post("/threads", json={}))
    schedules = ["0 3 1 1 *", "0 1 1 1 *", "0 2 1 1 *"]  # next_run_date order: 1, 2, 0
    made = [await _cron(http, tag, schedule=s) for s in schedules]
    made.append(
        await _cron(http, tag, thread_id=thread["thread_id"], enabled=False, schedule="0 4 1 1 *")
    )
    ids = [c["cron_id"] for c in made]
    q = {"metadata": {"test": tag}}

    async def search(**more: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await _ok(
            await http.post("/runs/crons/search", json={**q, **more})
        )
        return found

    assert [c["cron_id"] for c in await search()] == ids[::-1]  # created_at, newest first
    by_date = await search(
        sort_by="next_run_date", sort_order="asc", select=["cron_id", "next_run_date"]
    )
    assert [c["cron_id"] for c in by_date] == [ids[1], ids[2], ids[0], ids[3]]
    assert all(set(c) == {"cron_id", "next_run_date"} for c in by_date)
    # A stateless cron's missing thread sorts after any id; ties in creation order.
    by_thread = await search(sort_by="thread_id", sort_order="asc")
    assert [c["cron_id"] for c in by_thread] == [ids[3], ids[0], ids[1], ids[2]]
    by_thread = await search(sort_by="thread_id", sort_order="desc")
    assert [c["cron_id"] for c in by_thread] == ids
    assert [c["cron_id"] for c in await search(enabled=False)] == [ids[3]]
    assert [c["cron_id"] for c in await search(thread_id=thread["thread_id"])] == [ids[3]]
    assert len(await search(assistant_id=PIPELINE)) == 4
    page = await http.post("/runs/crons/search", json={**q, "limit": 2, "offset": 1})
    assert [c["cron_id"] for c in await _ok(page)] == [ids[2], ids[1]]
    assert (page.headers["x-pagination-total"], page.headers["x-pagination-next"]) == ("4", "3")
    last = await http.post("/runs/crons/search", json={**q, "limit": 2, "offset": 2})
    assert "x-pagination-next" not in last.headers
    for bad in (
        {"sort_by": "schedule"},
        {"select": ["nope"]},
        {"sort_order": "up"},
        {"assistant_id": "pipeline"},
    ):
        await _ok(await http.post("/runs/crons/search", json={**q, **bad}), 422)


async def test_count_and_delete(http: httpx.AsyncClient) -> None:
    tag = str(uuid.uuid4())
    thread = await _ok(await http.post("/threads", json={}))
    first = await _cron(http, tag)
    await _cron(http, tag, thread_id=thread["thread_id"])
    count = "/runs/crons/count"
    assert await _ok(await http.post(count, json={"metadata": {"test": tag}})) == 2
    assert await _ok(await http.post(count, json={"thread_id": thread["thread_id"]})) == 1
    await _ok(await http.delete(f"/runs/crons/{first['cron_id']}"), 204)
    await _ok(await http.get(f"/runs/crons/{first['cron_id']}"), 404)
    await _ok(await http.delete(f"/runs/crons/{first['cron_id']}"), 404)
    assert await _ok(await http.post(count, json={"metadata": {"test": tag}})) == 1
