"""Business-day calendars: which days a batch's deadlines count on.

A calendar is weekends plus the config's own extra holidays and extra working days (an
extra working day wins over everything, an extra holiday over a weekend). A deadline
counts only if the date of its instant *in the batch's timezone* is a business day; the
schedule drops the others, so a default window then spans from the previous kept deadline.

Public holidays by country are meant to come from the `holidays` package, but every
release of it requires python-dateutil < 3 while kubernetes 37 requires >= 3, so it
cannot be installed beside the client this product is built on; until that is resolved,
a calendar lists its holidays in `extra_holidays` (config/sla.yaml shows Japan's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class BusinessCalendar:
    """One named calendar; hashable, so schedules that use it can be shared."""

    name: str
    weekends: frozenset[int] = frozenset({5, 6})  # date.weekday(): Monday is 0
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()

    def skipped(self, day: date) -> str | None:
        """Why `day` is not a business day ("holiday", "Saturday"), or None when it is."""
        if day in self.extra_working_days:
            return None
        if day in self.extra_holidays:
            return "holiday"
        if day.weekday() in self.weekends:
            return day.strftime("%A")
        return None

    def is_business_day(self, day: date) -> bool:
        return self.skipped(day) is None

    def signature(self) -> str:
        """What, if changed by a reload, changes which deadlines count."""
        parts = [
            ",".join(str(d) for d in sorted(self.weekends)),
            ",".join(str(d) for d in sorted(self.extra_holidays)),
            ",".join(str(d) for d in sorted(self.extra_working_days)),
        ]
        return "|".join(parts)
