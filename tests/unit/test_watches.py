"""Warnings from runs: `overrun` past max_runtime and `at_risk` before a deadline, judged
at the Kubernetes horizon, each once, resolved or superseded (fixed time, no sleeps)."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.core.engine import Engine
from monitor.core.facts import JobGone, JobSeen, Post, Tick
from tests.unit.engine_helpers import T0, advance, deadline_batch, make_config, posts, resolves

H = timedelta(hours=1)
M = timedelta(minutes=1)
D1 = T0 + 9 * H  # 2026-11-26T09:00Z: the first deadline
DAY = timedelta(days=1)


def running(uid: str, start: datetime, cronjob: str = "daily") -> JobSeen:
    return JobSeen(
        uid=uid, namespace="ml", name=f"{cronjob}-{uid}", cronjob=cronjob, start_time=start
    )


def done(uid: str, start: datetime, end: datetime, cronjob: str = "daily") -> JobSeen:
    return JobSeen(
        uid=uid,
        namespace="ml",
        name=f"{cronjob}-{uid}",
        cronjob=cronjob,
        start_time=start,
        completion_time=end,
        outcome="succeeded",
    )


def engine_with(**batch: object) -> Engine:
    engine = Engine(make_config(deadline_batch(**batch)), started_at=T0)
    advance(engine, T0)
    return engine


def with_history(engine: Engine, minutes: int = 20, runs: int = 5) -> None:
    """`runs` successes of `minutes` each, on the days before T0 (no deadline judged)."""
    for day in range(runs, 0, -1):
        start = T0 - day * DAY + 8 * H
        engine.handle(done(f"h{day}", start, start + minutes * M))


# -- overrun -----------------------------------------------------------------------------


def test_a_run_past_max_runtime_is_one_overrun_in_its_thread_resolved_when_it_ends() -> None:
    engine = engine_with(max_runtime="2h")
    engine.handle(running("r1", T0 + H))
    assert posts(advance(engine, T0 + 3 * H - M)) == []
    [alert] = posts(advance(engine, T0 + 3 * H + M))
    assert (alert.kind, alert.key, alert.at) == ("overrun", "overrun:ml/daily-r1@r1", T0 + 3 * H)
    assert alert.thread == "run:ml/daily-r1"
    assert alert.details["max_runtime_seconds"] == 7200
    assert posts(advance(engine, T0 + 4 * H)) == []  # once
    [over] = resolves(engine.handle(done("r1", T0 + H, T0 + 5 * H)))
    assert (over.key, over.kind, over.details["outcome"]) == (alert.key, "overrun", "succeeded")
    assert over.details["duration_seconds"] == 4 * 3600
    assert resolves(advance(engine, T0 + 6 * H)) == []  # resolved once


def test_overrun_waits_for_the_kubernetes_view_and_a_deleted_run_ends_it() -> None:
    engine = engine_with(max_runtime="30m")
    engine.handle(running("r1", T0 + H))
    assert posts(engine.handle(Tick(T0 + 2 * H))) == []  # the clock alone: view not there
    [alert] = posts(advance(engine, T0 + 2 * H))
    [over] = resolves(engine.handle(JobGone("r1", "ml", "daily-r1")))
    assert (over.key, over.details["outcome"]) == (alert.key, "gone")


def test_no_max_runtime_no_overrun_and_a_run_ending_in_time_is_silent() -> None:
    engine = engine_with()
    engine.handle(running("r1", T0 + H))
    assert [a.kind for a in posts(advance(engine, T0 + 8 * H))] == []
    engine = engine_with(max_runtime="2h")
    engine.handle(running("r1", T0 + H))
    engine.handle(done("r1", T0 + H, T0 + 2 * H))
    assert posts(advance(engine, T0 + 5 * H)) == []


# -- at_risk -----------------------------------------------------------------------------


def test_no_run_started_by_deadline_minus_expected_is_at_risk_then_superseded_by_the_miss() -> None:
    engine = engine_with()
    with_history(engine, minutes=20)
    assert posts(advance(engine, D1 - 21 * M)) == []
    [risk] = posts(advance(engine, D1 - 19 * M))
    assert (risk.kind, risk.key, risk.at) == ("at_risk", "at_risk:daily@2026-11-26T09:00:00+00:00",
                                              D1 - 20 * M)  # fmt: skip
    assert risk.details["why"] == "not_started"
    assert risk.details["expected_seconds"] == 20 * 60
    actions = advance(engine, D1 + M)
    assert [a.kind for a in posts(actions)] == ["missed_deadline"]
    [superseded] = resolves(actions)
    assert superseded.key == risk.key
    assert superseded.closed == "superseded by the missed deadline"


def test_a_completion_in_time_after_a_warning_made_it() -> None:
    engine = engine_with()
    with_history(engine, minutes=20)
    [risk] = posts(advance(engine, D1 - 15 * M))
    engine.handle(running("late", D1 - 10 * M))
    [made] = resolves(engine.handle(done("late", D1 - 10 * M, D1 - 2 * M)))
    assert made.key == risk.key
    assert made.closed is None
    assert made.details["completed_at"] == "2026-11-26T08:58:00+00:00"
    assert posts(advance(engine, D1 + H)) == []  # met: no miss


def test_a_run_longer_than_expected_is_at_risk_once_and_a_run_in_time_is_not() -> None:
    engine = engine_with()
    with_history(engine, minutes=20)
    engine.handle(running("slow", D1 - 2 * H))
    assert posts(advance(engine, D1 - 2 * H + 19 * M)) == []
    [risk] = posts(advance(engine, D1 - 2 * H + 21 * M))
    assert (risk.details["why"], risk.details["run"]) == ("running_long", "daily-slow")
    assert risk.at == D1 - 2 * H + 20 * M
    assert posts(advance(engine, D1 - 10 * M)) == []  # once per deadline
    # The next day a run that is quick enough raises nothing.
    engine.handle(done("slow", D1 - 2 * H, D1 - M))
    engine.handle(running("fast", D1 + DAY - H))
    engine.handle(done("fast", D1 + DAY - H, D1 + DAY - H + 15 * M))
    assert [a.kind for a in posts(advance(engine, D1 + DAY + H))] == []


def test_at_risk_needs_five_durations_and_can_be_turned_off() -> None:
    engine = engine_with()
    with_history(engine, runs=4)
    assert [a.kind for a in posts(advance(engine, D1 - M))] == []
    engine = engine_with(at_risk=False)
    with_history(engine)
    assert [a.kind for a in posts(advance(engine, D1 - M))] == []


def test_a_restart_does_not_warn_twice() -> None:
    engine = engine_with(max_runtime="1h")
    with_history(engine)
    engine.handle(running("r1", D1 - 3 * H))
    warned = posts(advance(engine, D1 - 30 * M))
    assert sorted(a.kind for a in warned) == ["at_risk", "overrun"]
    restored = Engine.restore(engine.config, engine.to_json(), D1 - 29 * M)
    restored.handle(running("r1", D1 - 3 * H))  # the relist
    assert posts(advance(restored, D1 - 20 * M)) == []
    ended = resolves(restored.handle(done("r1", D1 - 3 * H, D1 - 5 * M)))
    assert sorted((r.kind, r.key) for r in ended) == sorted((a.kind, a.key) for a in warned)
    assert all(isinstance(a, Post) for a in warned)  # the run ended in time: both resolved
