"""Business-day calendars: Japanese holidays (substitute ones too), weekends, extra days,
and deadlines that only count on business days, judged by the engine."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor import cli
from monitor.core.calendars import BusinessCalendar
from monitor.core.engine import Engine
from tests.unit.engine_helpers import advance, make_config, posts, succeeded

#: Japan's public holidays over the year end, as a config lists them (extra_holidays).
YEAR_END = frozenset({date(2026, 12, 31), date(2027, 1, 1)})
JP = BusinessCalendar("jp", extra_holidays=YEAR_END)
TOKYO = ZoneInfo("Asia/Tokyo")
JP_CONFIG = {"jp": {"extra_holidays": ["2026-12-31", "2027-01-01"]}}


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 12, 31), "holiday"),
        (date(2027, 1, 1), "holiday"),
        (date(2026, 12, 26), "Saturday"),
        (date(2026, 12, 27), "Sunday"),
    ],
)
def test_holidays_and_weekends_are_not_business_days(day: date, why: str) -> None:
    assert JP.skipped(day) == why
    assert not JP.is_business_day(day)


@pytest.mark.parametrize("day", [date(2026, 12, 28), date(2026, 12, 30), date(2027, 1, 4)])
def test_ordinary_weekdays_are_business_days(day: date) -> None:
    assert JP.skipped(day) is None


def test_extra_working_days_win_and_weekends_are_configurable() -> None:
    calendar = BusinessCalendar(
        "freeze",
        weekends=frozenset({6}),  # only Sunday off
        extra_holidays=frozenset({date(2026, 12, 31)}),
        extra_working_days=frozenset({date(2026, 12, 31), date(2027, 1, 3)}),
    )
    assert calendar.skipped(date(2026, 12, 31)) is None  # a holiday made a working day
    assert calendar.skipped(date(2026, 12, 26)) is None  # Saturday works here
    assert calendar.skipped(date(2026, 12, 27)) == "Sunday"
    assert calendar.skipped(date(2027, 1, 3)) is None  # a working Sunday


def jp_batch(**extra: object) -> dict[str, object]:
    return {
        "name": "daily",
        "match": {"namespace": "ml", "cronjob": "daily"},
        "deadline": "0 9 * * *",
        "timezone": "Asia/Tokyo",
        "calendar": "jp",
        **extra,
    }


def test_deadlines_on_non_business_days_are_not_judged_and_the_window_spans_them() -> None:
    config = make_config(jp_batch(), calendars=JP_CONFIG)
    friday = datetime(2026, 12, 25, 9, tzinfo=TOKYO)
    engine = Engine(config, started_at=friday - timedelta(hours=1))
    engine.handle(succeeded("fri", friday - timedelta(minutes=30)))
    assert posts(advance(engine, friday + timedelta(minutes=1))) == []
    # Saturday and Sunday 09:00 pass with no run: not deadlines, no alert.
    monday = datetime(2026, 12, 28, 9, tzinfo=TOKYO)
    assert posts(advance(engine, monday - timedelta(hours=1))) == []
    # A run on Sunday falls in Monday's window (since Friday's deadline): Monday is met.
    engine.handle(succeeded("sun", monday - timedelta(days=1)))
    assert posts(advance(engine, monday + timedelta(minutes=1))) == []
    # Over New Year, 2027-01-04 is the next deadline after 2026-12-30; no run: one miss.
    missed = advance(engine, datetime(2027, 1, 4, 9, 1, tzinfo=TOKYO))
    assert [p.key for p in posts(missed)] == [
        "daily@2026-12-29T09:00:00+09:00"
    ]  # the first miss opens the incident; 12-30 and 01-04 only edit it
    assert engine.tracks["daily"].record[-3:] == "000"  # 12-29, 12-30, 01-04: no more


def test_schedule_lists_only_business_days_and_says_why_others_are_skipped(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "sla.yaml"
    path.write_text(
        "timezone: Asia/Tokyo\nslack: {channel: '#a'}\n"
        "calendars: {jp: {extra_holidays: ['2026-12-31', '2027-01-01']}}\n"
        "batches:\n  - {name: daily, match: {cronjob: daily}, deadline: '0 9 * * *', "
        "calendar: jp}\n"
    )
    assert cli.main(["schedule", str(path), "--since", "2026-12-28", "--count", "5"]) == 0
    lines = [line.split("  window")[0].strip() for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "daily: 0 9 * * * (Asia/Tokyo, business days of jp)",
        "2026-12-28T09:00:00+09:00",
        "2026-12-29T09:00:00+09:00",
        "2026-12-30T09:00:00+09:00",
        "2026-12-31 skipped: holiday",
        "2027-01-01 skipped: holiday",
        "2027-01-02 skipped: Saturday",
        "2027-01-03 skipped: Sunday",
        "2027-01-04T09:00:00+09:00",
        "2027-01-05T09:00:00+09:00",
    ]


def test_a_calendar_change_on_reload_rejudges_only_undecided_deadlines() -> None:
    from monitor.core.facts import ConfigReplaced

    plain = make_config({**jp_batch(), "calendar": None}, calendars=JP_CONFIG)
    engine = Engine(plain, started_at=datetime(2026, 12, 30, 10, tzinfo=TOKYO))
    with_calendar = make_config(jp_batch(), calendars=JP_CONFIG)
    engine.handle(ConfigReplaced(with_calendar, datetime(2026, 12, 30, 11, tzinfo=TOKYO)))
    # 12-31 and 01-01 .. 01-03 are not business days any more: nothing to miss until 01-04.
    assert posts(advance(engine, datetime(2027, 1, 3, 23, tzinfo=TOKYO))) == []
    [missed] = posts(advance(engine, datetime(2027, 1, 4, 9, 1, tzinfo=TOKYO)))
    assert missed.key == "daily@2027-01-04T09:00:00+09:00"
    assert missed.details["window_start"] == "2026-12-30T09:00:00+09:00"
