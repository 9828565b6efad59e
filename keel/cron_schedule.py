"""Five-field cron expressions (minute hour day-of-month month day-of-week) and their next date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keel.errors import InvalidInput

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (low, high, names starting at `low`) for each field
FIELDS: list[tuple[int, int, list[str]]] = [
    (0, 59, []),
    (0, 23, []),
    (1, 31, []),
    (1, 12, MONTHS),
    (0, 7, DAYS),
]
SEARCH_DAYS = 366 * 5


def _value(text: str, low: int, high: int, names: list[str]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{text!r} is not in {low}-{high}")
    return int(text)


def _part(part: str, low: int, high: int, names: list[str]) -> set[int]:
    base, _, step_text = part.partition("/")
    step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else 0
    if step_text and not step:
        raise ValueError(f"bad step in {part!r}")
    if base == "*":
        start, end = low, high
    elif "-" in base:
        a, b = base.split("-", 1)
        start, end = _value(a, low, high, names), _value(b, low, high, names)
        if start > end:
            raise ValueError(f"bad range {base!r}")
    else:
        start = _value(base, low, high, names)
        end = high if step_text else start
    return set(range(start, end + 1, step or 1))


def _field(text: str, low: int, high: int, names: list[str]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        out |= _part(part, low, high, names)
    return out


@dataclass(frozen=True)
class CronSchedule:
    minutes: set[int]
    hours: set[int]
    days: set[int]
    months: set[int]
    weekdays: set[int]  # 0 = Monday, as `datetime.weekday()`
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Parse a schedule; a malformed one is a 422."""
        fields = MACROS.get(expr.strip().lower(), expr).split()
        if len(fields) != 5:
            raise InvalidInput(f"Invalid cron schedule {expr!r}: expected 5 fields")
        try:
            sets = [_field(text, *spec) for text, spec in zip(fields, FIELDS, strict=True)]
        except ValueError as exc:
            raise InvalidInput(f"Invalid cron schedule {expr!r}: {exc}") from None
        weekdays = {(d - 1) % 7 for d in sets[4]}
        return cls(
            sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] == "*", fields[4] == "*"
        )

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = moment.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, after: datetime, tz: str | None = None) -> datetime | None:
        """The first matching minute strictly after `after`, in UTC (None if there is none)."""
        zone = timezone(tz)
        moment = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
        moment += timedelta(minutes=1)
        limit = moment + timedelta(days=SEARCH_DAYS)
        while moment < limit:
            if moment.month not in self.months or not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment.replace(tzinfo=zone).astimezone(UTC)
        return None


def timezone(name: str | None) -> ZoneInfo:
    """An IANA zone (UTC when unset); an unknown name is a 422."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Invalid timezone: {name!r}") from None
