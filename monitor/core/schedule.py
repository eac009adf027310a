"""Durations, cron deadlines in a timezone, and deadline windows — exact across DST.

Cron expressions are iterated on *wall-clock* time (naive datetimes, so croniter never
sees a DST jump) and each wall time is then placed on the timeline:

* a wall time inside a spring-forward gap does not exist: it fires at the first valid
  instant after the gap (the transition itself), and several gap times collapse into one;
* a wall time inside a fall-back repeated hour exists twice: it fires once, at the first
  occurrence.

croniter stays behind this module so replacing it is a one-file change.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from monitor.core.calendars import BusinessCalendar

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^\s*\d+\s*(ms|s|m|h|d|w)\s*$"

#: "Never", kept as an instant so min()/max() need no special case.
NEVER = datetime.max.replace(tzinfo=UTC)

#: Largest shift of a wall clock at a DST transition anywhere (historic double summer time).
_MAX_DST_SHIFT = timedelta(hours=2)
#: Answers remembered per schedule (cleared when full; a day of minutely deadlines fits).
_MEMO_SIZE = 8192


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `5m`, `2h`, `1d`, `1w` (also `0`) into a timedelta."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '5m', got {text!r}")
    if text.strip() == "0":
        return timedelta(0)
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (ms, s, m, h, d, w), "
            "e.g. '90s', '5m', '2h', '1d'"
        )
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


def format_duration(delta: timedelta) -> str:
    """Render a duration for people: `1h 5m`, `42s`, `3d 2h`."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2])


@overload
def iso(instant: datetime) -> str: ...
@overload
def iso(instant: None) -> None: ...
def iso(instant: datetime | None) -> str | None:
    """ISO-8601 with offset, the one text form of an instant in state and messages."""
    return None if instant is None else instant.isoformat()


#: IANA names that all denote UTC itself.
_UTC_ALIASES = frozenset(
    {
        *("UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"),
        *("GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "GMT+0", "Etc/GMT+0", "GMT-0", "Etc/GMT-0"),
        *("Greenwich", "Etc/Greenwich"),
    }
)


def canonical_zone(name: str) -> str:
    """One name per zone where IANA has several for UTC, so a rename is not a change."""
    return "UTC" if name in _UTC_ALIASES else name


def epoch(instant: datetime) -> int | float:
    """An instant as epoch seconds, the compact form in saved state (an int when whole)."""
    seconds = instant.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def from_epoch(value: object) -> datetime:
    """The inverse of `epoch` (a UTC datetime); rejects anything but a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not an epoch instant: {value!r}")
    return datetime.fromtimestamp(value, UTC)


def parse_iso(text: str | None) -> datetime | None:
    """The inverse of `iso`; rejects naive datetimes so no instant is ever ambiguous."""
    if text is None:
        return None
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"instant without a UTC offset: {text!r}")
    return parsed


def parse_instant(text: str) -> datetime:
    """Like `parse_iso`, for an instant that must be present."""
    parsed = parse_iso(text)
    if parsed is None:
        raise ValueError("missing instant")
    return parsed


def load_timezone(name: str) -> ZoneInfo:
    """An IANA timezone, or ValueError naming the bad name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA timezone {name!r}") from error


@functools.lru_cache(maxsize=4096)
def validate_cron(expression: str) -> str:
    """Return the expression if it is 5 fields, or 6 with seconds first; else ValueError."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"invalid cron {expression!r}: expected 5 fields, or 6 with seconds first")
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise ValueError(f"invalid cron {expression!r}")
    try:
        croniter(expression, datetime(2000, 1, 1), second_at_beginning=True).get_next(datetime)
    except Exception as error:  # croniter raises several types for impossible dates
        raise ValueError(f"invalid cron {expression!r}: {error}") from error
    return expression


#: Instants a calendar may skip in a row before a schedule gives up (a minutely cron over a
#: long holiday skips about 1,440 a day; a calendar with no business day at all, forever).
_MAX_SKIPPED = 1_000_000


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    # Through UTC: astimezone() to an instant's own tzinfo returns it unchanged.
    return instant.astimezone(UTC).astimezone(tz).replace(tzinfo=None)


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    return _wall(wall.replace(tzinfo=tz), tz) == wall


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant that ends the spring-forward gap holding `wall`."""
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # before the jump
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # after the jump
    if low > high:
        low, high = high, low
    after_offset = high.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def place(wall: datetime, tz: ZoneInfo) -> datetime:
    """Put a wall-clock time on the timeline per the DST rules above, as a UTC instant.

    UTC, because Python never finds a time in a repeated hour equal to any instant of
    another zone (PEP 495): comparing and hashing must happen in one fixed zone.
    """
    if not _exists(wall, tz):
        return _gap_end(wall, tz)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class CronSchedule:
    """The deadline instants (in UTC) of one cron expression in one timezone, only those
    on business days of `calendar` when one is given (by the instant's date in `tz`).

    One croniter per schedule, re-positioned for each query: parsing the expression is
    most of croniter's cost, and an engine with thousands of batches asks often.
    """

    expression: str
    tz: ZoneInfo
    calendar: BusinessCalendar | None = None
    _walls: croniter = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)
    _memo: dict[tuple[datetime, bool], datetime] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        walls = croniter(self.expression, datetime(2000, 1, 1), second_at_beginning=True)
        object.__setattr__(self, "_walls", walls)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_memo", {})

    def local(self, instant: datetime) -> datetime:
        """The instant in this schedule's timezone, for keys and messages."""
        return instant.astimezone(self.tz)

    def _first(
        self, start_wall: datetime, backwards: bool, accept: Callable[[datetime], bool]
    ) -> datetime:
        """The first placed wall time from `start_wall` (exclusive) that `accept`s."""
        calendar = self.calendar
        with self._lock:
            self._walls.set_current(start_wall, force=True)
            step = self._walls.get_prev if backwards else self._walls.get_next
            for _ in range(_MAX_SKIPPED):
                instant = place(step(datetime), self.tz)
                if accept(instant) and (
                    calendar is None or calendar.is_business_day(instant.astimezone(self.tz).date())
                ):
                    return instant
        raise ValueError(f"{self.expression!r}: no business day in {_MAX_SKIPPED} instants")

    def next_after(self, instant: datetime) -> datetime:
        """The first deadline strictly after `instant`."""
        key = (instant, False)
        found = self._memo.get(key)
        if found is None:
            found = self._first(_wall(instant, self.tz), False, lambda at: at > instant)
            self._remember(key, found)
        return found

    def previous_before(self, instant: datetime) -> datetime:
        """The last deadline strictly before `instant`."""
        key = (instant, True)
        found = self._memo.get(key)
        if found is None:
            start = _wall(instant, self.tz)
            if instant.astimezone(UTC).astimezone(self.tz).fold:
                # Wall times after this one may still lie earlier on the timeline.
                start += _MAX_DST_SHIFT
            found = self._first(start, True, lambda at: at < instant)
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[datetime, bool], found: datetime) -> None:
        """Memoise an answer: thousands of batches share a cron and ask about the same
        instants (every deadline, its predecessor), and croniter is the costly part."""
        with self._lock:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Deadlines in the half-open interval (start, end]."""
        deadline = self.next_after(start)
        while deadline <= end:
            yield deadline
            deadline = self.next_after(deadline)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` deadlines strictly after `after`."""
        deadlines: list[datetime] = []
        deadline = after
        for _ in range(count):
            deadline = self.next_after(deadline)
            deadlines.append(deadline)
        return deadlines


@functools.lru_cache(maxsize=4096)
def cron_schedule(
    expression: str, tz: ZoneInfo, calendar: BusinessCalendar | None = None
) -> CronSchedule:
    """A shared schedule per (expression, zone, calendar): batches often share their cron."""
    return CronSchedule(expression, tz, calendar)


@dataclass(frozen=True)
class DeadlineRule:
    """A deadline batch's timing: cron instants, optional fixed window, grace."""

    cron: CronSchedule
    window: timedelta | None
    grace: timedelta

    def window_of(self, deadline: datetime) -> tuple[datetime, datetime]:
        """The window (start, end] of a deadline per SPEC "Deadline semantics".

        Without a fixed window it starts at the previous deadline + grace.
        """
        end = deadline + self.grace
        if self.window is not None:
            return deadline - self.window, end
        return self.cron.previous_before(deadline) + self.grace, end

    def decision_instant(self, deadline: datetime) -> datetime:
        """When a deadline can be judged (deadline + grace)."""
        return deadline + self.grace
