"""How often a deadline can fall, checked when a config is loaded.

A cron whose deadlines come less than once a year (`0 0 29 2 *`), one that never lands on
a business day of its calendar (`0 9 * * SAT` with weekends [sat, sun]), or one that
would make the schedule step over more skipped instants in a row than it can afford (a
per-second cron across a week of holidays) passes cron syntax but not the daemon: its
schedule would search year after year for a deadline, then fail past year 9999. So such
a schedule is a config error at the `deadline`, with the dates that show why.

Only the day fields decide the gaps, so the check walks the days a cron fires on (its
day twin `0 0 DOM MON DOW`, at most one instant a day). It probes every 30 days over a
full 28-year leap-year and weekday cycle, and at every extra holiday (outside the cycle a
gap that holds no holiday repeats one inside it). A gap longer than the probe spacing
straddles a probe, and is measured there exactly: from the last fire day on or before it
to the first after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from croniter import croniter

from monitor.core.calendars import BusinessCalendar

#: Longest gap between two deadlines of a cron: a year, and a few days for a yearly
#: `1W` (nearest weekday) deadline.
MAX_GAP = timedelta(days=372)
#: With a calendar, the longest gap between deadlines that fall on business days: a
#: yearly date falls on a weekend up to two years in a row.
MAX_BUSINESS_GAP = timedelta(days=4 * 366)
#: Most deadlines a calendar may skip in a row (deadlines a day times days off in a row):
#: the schedule steps over each one, a few tens of microseconds apiece.
MAX_SKIPPED = 50_000
_PROBE_EVERY = timedelta(days=30)
_CYCLE = (date(2024, 1, 1), date(2053, 1, 1))  # 29 years: a whole 28-year cycle
_DAY = timedelta(days=1)
#: Fire days a message's search for the ends of a gap may step over.
_MESSAGE_STEPS = 2_000
#: Longest run of days off measured (a calendar of one working weekday and a holiday on
#: each of them for years is already far past any cron's allowance).
_LONGEST_RUN = timedelta(days=20 * 366)


def _day_twin(expression: str) -> str:
    """The cron firing at midnight of every day `expression` fires on (its last 3 fields)."""
    return "0 0 " + " ".join(expression.split()[-3:])


class _FireDays:
    """The days a day twin fires on that are business days, searched from a day."""

    def __init__(self, twin: str, calendar: BusinessCalendar | None) -> None:
        self._walk = croniter(twin, datetime(2000, 1, 1))
        self._calendar = calendar

    def _counts(self, day: date) -> bool:
        return self._calendar is None or self._calendar.is_business_day(day)

    def after(self, day: date, limit: timedelta, steps: int | None = None) -> date | None:
        """The first counted fire day after `day`, if one comes within `limit` (and within
        `steps` fire days)."""
        self._walk.set_current(datetime.combine(day, time()), force=True)
        return self._search(day, limit, steps, self._walk.get_next)

    def on_or_before(self, day: date, limit: timedelta, steps: int | None = None) -> date | None:
        """The last counted fire day on or before `day`, if one is within `limit`."""
        self._walk.set_current(datetime.combine(day + _DAY, time()), force=True)
        return self._search(day, limit, steps, self._walk.get_prev)

    def _search(
        self, day: date, limit: timedelta, steps: int | None, step: Callable[[type], Any]
    ) -> date | None:
        taken = 0
        while steps is None or taken < steps:
            taken += 1
            try:
                found: date = step(datetime).date()
            except (ValueError, OverflowError):  # croniter gives up, or passes year 9999
                return None
            if abs(found - day) > limit:
                return None
            if self._counts(found):
                return found
        return None


def _weekly(twin: str) -> bool:
    """Whether the twin fires by day of the week alone (its gaps repeat every week)."""
    _, _, day_of_month, month, day_of_week = twin.split()
    return day_of_month == month == "*" and not any(mark in day_of_week for mark in "#L")


def _probes(twin: str, calendar: BusinessCalendar | None) -> Iterator[date]:
    days = set()
    day = _CYCLE[0]
    end = day + timedelta(weeks=8) if _weekly(twin) else _CYCLE[1]
    while day < end:
        days.add(day)
        day += _PROBE_EVERY
    if calendar is not None:
        days.update(calendar.extra_holidays)
    return iter(sorted(days))


#: A gap found too long: the last counted fire day before it and the first after (None:
#: none within the limit on that side), and the probe it straddles.
_Gap = tuple[date | None, date | None, date]


@functools.lru_cache(maxsize=1024)
def _gap(twin: str, calendar: BusinessCalendar | None) -> _Gap | None:
    """The first gap longer than allowed between the twin's counted fire days, if any."""
    limit = MAX_GAP if calendar is None else MAX_BUSINESS_GAP
    try:
        days = _FireDays(twin, calendar)
    except ValueError:  # not a cron croniter accepts: reported as invalid, not as rare
        return None
    latest: date | None = None  # the first fire day after the previous probe
    for probe in _probes(twin, calendar):
        if latest is not None and latest > probe:
            continue  # the same gap as at the previous probe
        following = days.after(probe, limit)
        if following is None:
            return days.on_or_before(probe, limit), None, probe
        if latest is not None and following - latest <= limit:
            latest = following  # no gap here can be longer than the one bounded by both
            continue
        preceding = days.on_or_before(probe, limit)
        if preceding is None or following - preceding > limit:
            return preceding, following, probe
        latest = following
    return None


def _per_day(expression: str) -> int:
    """How many instants the cron has on a day it fires on."""
    try:
        expanded = croniter(expression, second_at_beginning=True).expanded
    except ValueError:
        return 1

    def size(values: list[int | str], full: int) -> int:
        return full if "*" in values else len(set(values))

    seconds = size(expanded[5], 60) if len(expanded) > 5 else 1
    return size(expanded[0], 60) * size(expanded[1], 24) * seconds


@functools.lru_cache(maxsize=256)
def _longest_time_off(calendar: BusinessCalendar) -> int:
    """The most days in a row that are not business days (weekends, holidays or both)."""
    weekly = 0
    for start in range(7):
        run = 0
        while run < 7 and (start + run) % 7 in calendar.weekends:
            run += 1
        weekly = max(weekly, run)
    longest = weekly
    done: set[date] = set()
    for holiday in sorted(calendar.extra_holidays):
        if holiday in done or calendar.is_business_day(holiday):
            continue
        day = holiday
        while not calendar.is_business_day(day + _DAY) and day - holiday < _LONGEST_RUN:
            day += _DAY
            done.add(day)
        first = holiday
        while not calendar.is_business_day(first - _DAY) and holiday - first < _LONGEST_RUN:
            first -= _DAY
        longest = max(longest, (day - first).days + 1)
    return longest


def rarity(expression: str) -> str | None:
    """Why a valid cron's deadlines come too rarely (None: at least once a year)."""
    twin = _day_twin(expression)
    gap = _gap(twin, None)
    if gap is None:
        return None
    found = _span(_widened(twin, None, gap), "no deadline", "30 years")
    return f"cron {expression!r} fires too rarely: {found}; deadlines must come once a year or more"


def calendar_problem(expression: str, calendar: BusinessCalendar) -> str | None:
    """Why a valid, frequent enough cron cannot be used with `calendar` (None: it can)."""
    twin = _day_twin(expression)
    gap = _gap(twin, calendar)
    if gap is not None:
        if gap[:2] == (None, None) and _weekly(twin) and not calendar.extra_working_days:
            found = "no deadline ever falls on a business day"
        else:
            found = _span(_widened(twin, calendar, gap), "no deadline on a business day", "4 years")
        return (
            f"cron {expression!r} with calendar {calendar.name!r}: {found}; "
            "at least one every 4 years is needed"
        )
    per_day, days_off = _per_day(expression), _longest_time_off(calendar)
    if per_day * days_off > MAX_SKIPPED:
        return (
            f"cron {expression!r} fires up to {per_day} times a day and calendar "
            f"{calendar.name!r} has up to {days_off} days off in a row: over {MAX_SKIPPED} "
            "deadlines would be skipped in a row; use a coarser cron"
        )
    return None


def _widened(twin: str, calendar: BusinessCalendar | None, gap: _Gap) -> _Gap:
    """The gap with its missing ends looked for further away, for the message."""
    before, after, probe = gap
    days, far = _FireDays(twin, calendar), timedelta(days=30 * 366)
    before = before or days.on_or_before(probe, far, steps=_MESSAGE_STEPS)
    after = after or days.after(probe, far, steps=_MESSAGE_STEPS)
    return before, after, probe


def _span(gap: _Gap, none: str, limit: str) -> str:
    before, after, probe = gap
    if before is not None and after is not None:
        return f"{none} between {before} and {after}"
    if before is not None:
        return f"{none} in the {limit} after {before}"
    if after is not None:
        return f"{none} in the {limit} before {after}"
    return f"{none} within {limit} of {probe}"
