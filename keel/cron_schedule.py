"""Five-field cron expressions and their next date in a time zone, via `croniter`.

A schedule is read as local wall-clock times in its zone (UTC when unset). Around a daylight
saving change (docs/crons.md):
- a gap (a local time that does not exist, 02:30 on the spring-forward day in Europe/Paris):
  the slot fires at the first valid instant after the gap (03:00), once;
- an overlap (01:30 twice on the fall-back day in America/New_York): a fixed-time schedule
  (neither its minute nor its hour field is a wildcard: `30 1 * * *`) fires once, at the first
  occurrence; a schedule with a wildcard minute or hour (`*/15 * * * *`, `0 * * * *`) keeps its
  real-time rhythm and fires in both passes. This is Vixie cron's rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from keel.errors import InvalidInput

# The macros croniter accepts, as the five fields they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# More consecutive second-pass slots than any schedule has in one overlap (an hour of minutes).
MAX_SKIPPED = 120


@dataclass(frozen=True)
class CronSchedule:
    expr: str

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Validate a 5-field expression (or an @daily-style macro); a bad one is a 422."""
        if not isinstance(expr, str) or len(expr.split()) not in (1, 5):
            raise InvalidInput(f"Invalid cron schedule: {expr!r} (expected 5 fields)")
        try:
            croniter(expr)
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise InvalidInput(f"Invalid cron schedule: {expr!r} ({exc})") from None
        return cls(expr)

    @property
    def fixed_time(self) -> bool:
        """Neither the minute nor the hour field is a wildcard (`*`, `*/n`)."""
        minute, hour = MACROS.get(self.expr.strip().lower(), self.expr).split()[:2]
        return not (minute.startswith("*") or hour.startswith("*"))

    def next_after(self, after: datetime, tz: str | None = None) -> datetime | None:
        """The first slot strictly after `after`, in UTC (None if there is none): the
        schedule's local times in `tz`, with the DST rules of this module's docstring."""
        zone = timezone(tz)
        found = croniter(self.expr, after.astimezone(zone))
        for _ in range(MAX_SKIPPED):
            try:
                moment: datetime = found.get_next(datetime)
            except CroniterBadDateError:
                return None
            if not (self.fixed_time and second_pass(moment, zone)):
                return moment.astimezone(UTC)
        return None


def second_pass(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether `moment` is the second occurrence of a local time repeated by a DST overlap."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    first = local.replace(tzinfo=zone, fold=0).utcoffset()
    second = local.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second and moment.utcoffset() == second


def timezone(name: str | None) -> ZoneInfo:
    """An IANA zone (UTC when unset); an unknown name is a 422."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Invalid timezone: {name!r}") from None
