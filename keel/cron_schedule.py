"""Five-field cron expressions and their next date in a time zone, via `croniter`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from keel.errors import InvalidInput


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

    def next_after(self, after: datetime, tz: str | None = None) -> datetime | None:
        """The first matching minute strictly after `after`, in UTC (None if there is none).

        The schedule is read in `tz` (UTC when unset), so '0 9 * * *' in Europe/Paris fires at
        09:00 Paris time on both sides of a DST change.
        """
        zone = timezone(tz)
        try:
            found = croniter(self.expr, after.astimezone(zone)).get_next(datetime)
        except CroniterBadDateError:
            return None
        return found.astimezone(UTC)


def timezone(name: str | None) -> ZoneInfo:
    """An IANA zone (UTC when unset); an unknown name is a 422."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Invalid timezone: {name!r}") from None
