"""Durations, cron instants across DST transitions, and deadline windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.schedule import (
    CronSchedule,
    DeadlineRule,
    format_duration,
    load_timezone,
    parse_duration,
    validate_cron,
)

NEW_YORK = load_timezone("America/New_York")
LONDON = load_timezone("Europe/London")
TOKYO = load_timezone("Asia/Tokyo")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("0", 0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5", "5 minutes", "-5m", "1.5h", "", "m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(seconds=42)) == "42s"
    assert format_duration(timedelta(hours=1, minutes=5, seconds=3)) == "1h 5m"
    assert format_duration(timedelta(days=3, hours=2, minutes=1)) == "3d 2h"


@pytest.mark.parametrize("cron", ["0 9 * * *", "*/10 * * * *", "30 0 9 * * *", "0 0 9 * * 1-5"])
def test_valid_cron(cron: str) -> None:
    assert validate_cron(cron) == cron


@pytest.mark.parametrize("cron", ["0 9 * *", "61 * * * *", "0 9 * * * * *", "* * 31 2 *", "x"])
def test_invalid_cron(cron: str) -> None:
    with pytest.raises(ValueError, match="invalid cron"):
        validate_cron(cron)


def test_six_fields_put_seconds_first() -> None:
    cron = CronSchedule("30 0 9 * * *", UTC_ZONE)
    assert cron.next_after(utc(2026, 11, 26)) == utc(2026, 11, 26, 9, 0, 30)


UTC_ZONE = load_timezone("UTC")


def test_unknown_timezone() -> None:
    with pytest.raises(ValueError, match="unknown IANA timezone 'Mars/Base'"):
        load_timezone("Mars/Base")


def test_new_york_spring_gap_fires_once_at_the_end_of_the_gap() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    cron = CronSchedule("30 2 * * *", NEW_YORK)
    days = cron.upcoming(utc(2026, 3, 7, 12), 3)
    assert [cron.local(d).isoformat() for d in days] == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_new_york_gap_times_collapse_into_one_instant() -> None:
    cron = CronSchedule("*/20 2,3 * * *", NEW_YORK)
    first = cron.upcoming(utc(2026, 3, 8, 5), 3)
    assert [cron.local(d).isoformat() for d in first] == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:20:00-04:00",
        "2026-03-08T03:40:00-04:00",
    ]


def test_new_york_fall_back_fires_once_at_the_first_occurrence() -> None:
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
    cron = CronSchedule("30 1 * * *", NEW_YORK)
    days = cron.upcoming(utc(2026, 10, 31, 12), 2)
    assert [cron.local(d).isoformat() for d in days] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_fall_back_from_inside_the_repeated_hour() -> None:
    cron = CronSchedule("*/20 1 * * *", NEW_YORK)
    second_pass = utc(2026, 11, 1, 6, 30)  # 01:30 EST, the repeated hour's second pass
    assert cron.next_after(second_pass) == utc(2026, 11, 2, 6, 0)
    assert cron.previous_before(second_pass) == utc(2026, 11, 1, 5, 40)  # 01:40 EDT


def test_london_spring_gap_and_fall_back() -> None:
    # 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
    cron = CronSchedule("30 1 * * *", LONDON)
    [gap_day] = cron.upcoming(utc(2026, 3, 29), 1)
    assert cron.local(gap_day).isoformat() == "2026-03-29T02:00:00+01:00"
    back = cron.upcoming(utc(2026, 10, 24, 12), 2)
    assert [cron.local(d).isoformat() for d in back] == [
        "2026-10-25T01:30:00+01:00",
        "2026-10-26T01:30:00+00:00",
    ]


def test_tokyo_has_no_transitions() -> None:
    cron = CronSchedule("0 9 * * *", TOKYO)
    days = cron.upcoming(utc(2026, 3, 1), 400)
    assert all(cron.local(d).utcoffset() == timedelta(hours=9) for d in days)
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(days))


def test_window_defaults_to_previous_deadline_plus_grace() -> None:
    rule = DeadlineRule(CronSchedule("0 9 * * *", TOKYO), window=None, grace=timedelta(minutes=5))
    deadline = datetime(2026, 11, 27, 9, tzinfo=TOKYO)
    start, end = rule.window_of(deadline)
    assert start == datetime(2026, 11, 26, 9, 5, tzinfo=TOKYO)
    assert end == datetime(2026, 11, 27, 9, 5, tzinfo=TOKYO)


def test_fixed_window() -> None:
    rule = DeadlineRule(
        CronSchedule("0 9 * * *", TOKYO), window=timedelta(hours=3), grace=timedelta(0)
    )
    start, end = rule.window_of(datetime(2026, 11, 27, 9, tzinfo=TOKYO))
    assert (start, end) == (
        datetime(2026, 11, 27, 6, tzinfo=TOKYO),
        datetime(2026, 11, 27, 9, tzinfo=TOKYO),
    )


ZONES = ["America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"]
CRONS = ["30 1 * * *", "30 2 * * *", "*/15 * * * *", "0 0 * * 0", "15 30 1 * * *"]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
)
def test_instants_strictly_increase_and_next_previous_agree(
    zone: str, cron: str, start: datetime
) -> None:
    schedule = CronSchedule(cron, load_timezone(zone))
    instants = schedule.upcoming(start, 6)
    assert instants[0] > start
    assert all(a < b for a, b in itertools.pairwise(instants))
    for earlier, later in itertools.pairwise(instants):
        assert schedule.previous_before(later) == earlier
        assert list(schedule.between(earlier, later)) == [later]
