"""Reloads and restarts re-judge from the runs the engine knows: config edits raise no false
alarm, never forget a completion and never re-alert; health across restarts; bounded state."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from monitor.core.engine import Engine
from monitor.core.facts import (
    KUBERNETES,
    Action,
    ConfigReplaced,
    Edit,
    Post,
    Resolve,
    SourceHealth,
    Tick,
    Watermark,
)
from tests.unit.engine_helpers import (
    T0,
    advance,
    deadline_batch,
    failed,
    make_config,
    posts,
    resolves,
    succeeded,
)

H = timedelta(hours=1)
M = timedelta(minutes=1)
D1 = T0 + 9 * H  # 2026-11-26T09:00Z


def started(*batches: dict[str, Any], at: Any = T0, **top: Any) -> Engine:
    engine = Engine(make_config(*batches, **top), started_at=at)
    advance(engine, at)
    return engine


def reload(engine: Engine, *batches: dict[str, Any], at: Any, **top: Any) -> list[Action]:
    return engine.handle(ConfigReplaced(make_config(*batches, **top), at=at))


def restart(engine: Engine, *batches: dict[str, Any], at: Any, **top: Any) -> Engine:
    saved = json.loads(json.dumps(engine.to_json()))
    return Engine.restore(make_config(*batches, **top), saved, now=at)


def test_a_grace_only_reload_after_a_met_deadline_raises_nothing() -> None:
    engine = started(deadline_batch(grace="5m"))
    engine.handle(succeeded("today", D1 - H))
    advance(engine, D1 + 2 * M)  # met, not yet decided (decision at 09:05)
    assert reload(engine, deadline_batch(grace="15m"), at=D1 + 3 * M) == []
    assert advance(engine, D1 + H) == []
    assert advance(engine, D1 + 24 * H + 16 * M) != []  # the next day is missed: still judged


def test_a_window_or_timezone_edit_keeps_a_completion_waiting_on_the_watermark() -> None:
    engine = started(deadline_batch())
    engine.handle(Tick(D1 + 10 * M))
    engine.handle(succeeded("today", D1 - 5 * M))  # watermark still behind it
    assert reload(engine, deadline_batch(window="2h"), at=D1 + 10 * M) == []
    assert engine.handle(Watermark(KUBERNETES, D1 + 10 * M)) == []
    assert posts(advance(engine, D1 + 11 * M)) == []


def test_utc_to_etc_utc_alerts_no_batch_that_already_ran() -> None:
    engine = started(deadline_batch(), timezone="UTC")
    engine.handle(succeeded("today", D1 - H))
    advance(engine, D1 - 30 * M)
    assert reload(engine, deadline_batch(), at=D1 - 20 * M, timezone="Etc/UTC") == []
    assert advance(engine, D1 + M) == []


def test_a_retimed_batch_after_a_restart_catches_up_deadlines_missed_while_down() -> None:
    engine = started(deadline_batch(cron="0 9 * * *"))
    advance(engine, D1 - 2 * H)
    restored = restart(engine, deadline_batch(cron="0 8 * * *"), at=D1 + 2 * H)
    actions = advance(restored, D1 + 2 * H)
    assert [p.key for p in posts(actions)] == ["daily@2026-11-26T08:00:00+00:00"]


def test_changed_rule_never_realerts_a_decided_deadline() -> None:
    engine = started(deadline_batch(grace="5m"))
    [alert] = advance(engine, D1 + 6 * M)
    assert reload(engine, deadline_batch(grace="10m"), at=D1 + 7 * M) == []
    assert advance(engine, D1 + 20 * M) == []
    assert alert.key in engine.open_alerts


def test_a_batch_added_by_reload_sees_runs_that_completed_before_it() -> None:
    engine = started(deadline_batch("other"))
    engine.handle(succeeded("early", D1 - H, cronjob="added"))
    advance(engine, D1 - 30 * M)
    assert reload(engine, deadline_batch("other"), deadline_batch("added"), at=D1 - 20 * M) == []
    actions = advance(engine, D1 + M)
    assert [p.batch for p in posts(actions)] == ["other"]


def test_the_batches_a_reload_or_restart_starts_judging_are_reported_once() -> None:
    engine = started(deadline_batch("other"))
    assert engine.take_started() == ["other"]  # the first start
    assert engine.take_started() == []
    advance(engine, D1 - 2 * H)
    reload(engine, deadline_batch("other"), deadline_batch("added"), at=D1 - 2 * H)
    assert engine.take_started() == ["added"]
    assert engine.take_started() == []
    # A re-timed batch keeps what it decided: nothing about it depends on when this ran.
    reload(engine, deadline_batch("other", grace="10m"), deadline_batch("added"), at=D1 - H)
    assert engine.take_started() == []
    restored = restart(engine, deadline_batch("other"), deadline_batch("new"), at=D1 - H)
    assert restored.take_started() == ["new"]


def test_only_a_state_saved_after_a_reload_keeps_the_added_batch_from_missing_a_deadline() -> None:
    """Why a reload that adds a batch is saved at once: a successor resuming from a state
    saved before it finds the batch new, and judges it only from its own start."""
    engine = started(deadline_batch("other"))
    advance(engine, D1 - 2 * H)
    before = json.loads(json.dumps(engine.to_json()))
    reload(engine, deadline_batch("other"), deadline_batch("added"), at=D1 - 2 * H)
    after = json.loads(json.dumps(engine.to_json()))
    batches = make_config(deadline_batch("other"), deadline_batch("added"))
    back_up = D1 + 2 * H  # down over the 09:00 deadline of both batches
    from_after = advance(Engine.restore(batches, after, now=back_up), back_up)
    from_before = advance(Engine.restore(batches, before, now=back_up), back_up)
    assert sorted(p.batch for p in posts(from_after)) == ["added", "other"]
    assert [p.batch for p in posts(from_before)] == ["other"]


def test_a_batch_added_after_its_deadline_but_within_grace_judges_that_deadline() -> None:
    engine = started(deadline_batch("other"))
    reload(engine, deadline_batch("other"), deadline_batch("added", grace="10m"), at=D1 + 2 * M)
    actions = posts(advance(engine, D1 + 11 * M))
    assert ("added", "added@2026-11-26T09:00:00+00:00") in [(p.batch, p.key) for p in actions]


def test_a_new_freshness_bound_keeps_the_open_incident_and_the_last_success() -> None:
    fresh = {"name": "f", "match": {"cronjob": "f"}, "freshness": "30m"}
    engine = started(fresh)
    engine.handle(succeeded("one", T0 + 10 * M, cronjob="f"))
    [stale] = advance(engine, T0 + 45 * M)
    assert reload(engine, {**fresh, "freshness": "20m"}, at=T0 + 46 * M) == []
    assert advance(engine, T0 + 2 * H) == []  # the same spell: not alerted again
    engine.handle(succeeded("two", T0 + 2 * H + M, cronjob="f"))
    [resolved] = resolves(advance(engine, T0 + 2 * H + 2 * M))
    assert resolved.key == stale.key
    assert engine.status()[0]["last_success"] == (T0 + 2 * H + M).isoformat()


def test_switching_deadline_and_freshness_closes_the_open_incident() -> None:
    engine = started(deadline_batch())
    [alert] = advance(engine, D1 + M)
    fresh = {"name": "daily", "match": {"namespace": "ml", "cronjob": "daily"}, "freshness": "1h"}
    [closed] = reload(engine, fresh, at=D1 + 2 * M)
    assert isinstance(closed, Resolve)
    assert (closed.key, closed.closed) == (alert.key, closed.details["closed"])
    assert engine.open_alerts == {}


def test_a_removed_batch_has_its_open_incident_closed_and_nothing_more() -> None:
    engine = started(deadline_batch(), deadline_batch("other"))
    alerts = posts(advance(engine, D1 + M))
    assert len(alerts) == 2
    [closed] = reload(engine, deadline_batch("other"), at=D1 + 2 * M)
    assert closed.key == "daily@2026-11-26T09:00:00+00:00"
    assert closed.closed == "batch removed from config"
    engine.handle(succeeded("late", D1 + 3 * M))
    later = advance(engine, D1 + 2 * H)
    assert [a.batch for a in later] == []


def test_a_batch_removed_while_down_is_closed_after_the_restart() -> None:
    engine = started(deadline_batch(), deadline_batch("other"))
    advance(engine, D1 + M)
    restored = restart(engine, deadline_batch("other"), at=D1 + H)
    closing = restored.handle(Tick(D1 + H))
    assert [(a.key, isinstance(a, Resolve)) for a in closing] == [
        ("daily@2026-11-26T09:00:00+00:00", True)
    ]
    assert "daily@2026-11-26T09:00:00+00:00" not in restored.open_alerts


def test_a_reload_stamped_behind_the_engine_clock_leaves_no_phantom_miss() -> None:
    engine = started(deadline_batch())
    engine.handle(succeeded("today", D1 - H))
    advance(engine, D1 + H)
    assert reload(engine, deadline_batch(grace="1m"), at=D1 - 2 * H) == []
    assert advance(engine, D1 + 2 * H) == []
    assert engine.status()[0]["open_alerts"] == []


def test_a_minutely_batch_broken_for_thirty_days_keeps_one_open_alert() -> None:
    engine = started(deadline_batch(cron="* * * * *"), slack={"remind": "0"})
    actions: list[Action] = []
    for hour in range(1, 30 * 24 + 1, 24):
        actions += advance(engine, T0 + hour * H)
    assert len(posts(actions)) == 1
    assert len(engine.open_alerts) == 1
    assert len(json.dumps(engine.to_json())) < 20_000
    engine.handle(succeeded("back", T0 + 30 * 24 * H + 30 * M))
    resolved = advance(engine, T0 + 30 * 24 * H + H)
    assert len(resolves(resolved)) == 1
    assert sum(isinstance(a, Edit) for a in actions) == 29  # one edit per later walk


def test_a_restart_after_a_day_down_posts_one_incident_per_batch() -> None:
    engine = started(deadline_batch(cron="* * * * *"))
    saved_at = T0 + H
    advance(engine, saved_at)
    restored = restart(engine, deadline_batch(cron="* * * * *"), at=saved_at + 24 * H)
    actions = advance(restored, saved_at + 24 * H)
    assert posts(actions) == []
    # The incident opened before the stop grows by one edit (and gets its daily reminder).
    [edit] = [a for a in actions if isinstance(a, Edit)]
    assert len(actions) == 2
    assert edit.details["missed_count"] == 60 + 24 * 60


def test_a_stalled_watch_with_the_api_reachable_is_degraded_then_recovers() -> None:
    engine = started(deadline_batch())
    engine.handle(SourceHealth(KUBERNETES, True, T0))
    engine.handle(Watermark(KUBERNETES, T0 + H))
    for minute in range(1, 7):
        engine.handle(SourceHealth(KUBERNETES, True, T0 + H + minute * M))
        actions = engine.handle(Tick(T0 + H + minute * M))
    [degraded] = actions
    assert isinstance(degraded, Post)
    assert degraded.key == f"degraded:kubernetes-watermark@{(T0 + H).isoformat()}"
    [back] = engine.handle(Watermark(KUBERNETES, T0 + H + 6 * M))
    assert isinstance(back, Resolve)
    assert back.key == degraded.key


def test_a_restart_after_a_short_outage_does_not_page_degraded() -> None:
    engine = started(deadline_batch())
    engine.handle(SourceHealth(KUBERNETES, False, T0, "refused"))
    advance(engine, T0 + M)
    restored = restart(engine, deadline_batch(), at=T0 + 10 * M)
    assert restored.handle(Tick(T0 + 10 * M)) == []
    restored.handle(SourceHealth(KUBERNETES, True, T0 + 10 * M))
    assert advance(restored, T0 + 12 * M) == []


def test_a_failure_without_a_time_is_placed_at_the_job_start_not_now() -> None:
    engine = started(deadline_batch())
    advance(engine, T0 + 8 * 24 * H)
    job = failed("old", T0 - H)
    old = type(job)(**{**{f: getattr(job, f) for f in job.__slots__}, "failed_at": None})
    old = type(job)(**{**{f: getattr(old, f) for f in old.__slots__}, "start_time": T0 - H})
    assert engine.handle(old) == []  # before the first start: never alerted


def test_the_first_batch_with_the_switch_on_gets_the_failure() -> None:
    quiet = deadline_batch("quiet", notify={"job_failed": False})
    quiet["match"] = {"namespace": "ml"}
    loud = deadline_batch("loud")
    loud["match"] = {"namespace": "ml"}
    engine = started(quiet, loud)
    [alert] = engine.handle(failed("u1", T0 + H))
    assert alert.batch == "loud"
    assert engine.handle(failed("u2", T0 + H)) != []
