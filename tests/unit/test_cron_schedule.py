"""A schedule's next slot in a time zone across daylight saving changes (keel/cron_schedule.py,
docs/crons.md): a local time in a gap fires once at the first valid instant after it; a local
time repeated by an overlap fires once for a fixed-time schedule, in both passes for a schedule
with a wildcard minute or hour. Explicit dates (2027) in Europe/Paris and America/New_York."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.cron_schedule import CronSchedule
from keel.errors import InvalidInput


def slots(expr: str, tz: str | None, start: datetime, until: datetime) -> list[str]:
    """Every slot after `start` up to `until`, in UTC ISO form."""
    schedule, at = CronSchedule.parse(expr), start
    out: list[str] = []
    while True:
        found = schedule.next_after(at, tz)
        if found is None or found > until:
            return out
        out.append(found.strftime("%m-%dT%H:%M"))
        at = found


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_schedule_reads_local_time_on_both_sides_of_a_change() -> None:
    # 09:00 Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    got = slots("0 9 * * *", "Europe/Paris", utc(2027, 3, 27), utc(2027, 3, 29, 12))
    assert got == ["03-27T08:00", "03-28T07:00", "03-29T07:00"]


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # Paris, 28 March 2027: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        ("Europe/Paris", 28, ["03-27T01:30", "03-28T01:00", "03-29T00:30"]),
        # New York, 14 March 2027: 02:00 EST jumps to 03:00 EDT.
        ("America/New_York", 14, ["03-13T07:30", "03-14T07:00", "03-15T06:30"]),
    ],
)
def test_a_time_in_a_spring_gap_fires_once_at_the_first_instant_after_it(
    tz: str, day: int, expected: list[str]
) -> None:
    got = slots("30 2 * * *", tz, utc(2027, 3, day - 1), utc(2027, 3, day + 1, 12))
    assert got == expected  # the gap day's slot is at 03:00 local, once


def test_a_wildcard_schedule_skips_the_times_a_gap_removes() -> None:
    got = slots("*/30 * * * *", "Europe/Paris", utc(2027, 3, 28, 0, 15), utc(2027, 3, 28, 1, 45))
    # 01:30 CET, then 02:00 and 02:30 do not exist: 03:00 and 03:30 CEST.
    assert got == ["03-28T00:30", "03-28T01:00", "03-28T01:30"]


@pytest.mark.parametrize(
    ("expr", "tz", "start", "expected"),
    [
        # New York, 7 Nov 2027: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        ("30 1 * * *", "America/New_York", utc(2027, 11, 6, 12), ["11-07T05:30", "11-08T06:30"]),
        # Paris, 31 Oct 2027: 02:30 at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        ("30 2 * * *", "Europe/Paris", utc(2027, 10, 30, 12), ["10-31T00:30", "11-01T01:30"]),
    ],
)
def test_a_fixed_time_in_an_autumn_overlap_fires_once_at_its_first_occurrence(
    expr: str, tz: str, start: datetime, expected: list[str]
) -> None:
    assert slots(expr, tz, start, start + timedelta(days=1, hours=20)) == expected


def test_a_wildcard_schedule_keeps_its_rhythm_through_an_overlap() -> None:
    got = slots("0 * * * *", "America/New_York", utc(2027, 11, 7, 3, 30), utc(2027, 11, 7, 8))
    # 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST: hourly in real time.
    assert got == ["11-07T04:00", "11-07T05:00", "11-07T06:00", "11-07T07:00", "11-07T08:00"]


def test_a_schedule_that_never_matches_has_no_next_slot() -> None:
    assert CronSchedule.parse("0 0 30 2 *").next_after(utc(2027, 1, 1)) is None


@pytest.mark.parametrize("expr", ["", "* * *", "61 * * * *", "@often", 5])
def test_a_bad_schedule_is_refused(expr: object) -> None:
    with pytest.raises(InvalidInput):
        CronSchedule.parse(expr)  # type: ignore[arg-type]
