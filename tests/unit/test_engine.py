"""The engine's rules, one scenario each, in fixed time (no clock, no sleeps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor.core.engine import Engine
from monitor.core.facts import (
    KUBERNETES,
    ConfigRejected,
    ConfigReplaced,
    Edit,
    JobGone,
    Post,
    Remind,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)
from monitor.core.kinds import Route
from monitor.core.schedule import iso
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
D2 = D1 + 24 * H


def started(config_batches: tuple[dict, ...] = (deadline_batch(),), **top: object) -> Engine:
    engine = Engine(make_config(*config_batches, **top), started_at=T0)
    advance(engine, T0)
    return engine


def test_on_time_completion_is_silent() -> None:
    engine = started()
    assert engine.handle(succeeded("a", D1 - H)) == []
    assert advance(engine, D1 + 5 * M) == []


def test_missed_deadline_posts_once_with_exact_key_and_breach_instant() -> None:
    engine = started((deadline_batch(grace="5m"),))
    assert advance(engine, D1 + 4 * M) == []
    [alert] = advance(engine, D1 + 6 * M)
    assert alert.kind == "missed_deadline"
    assert alert.key == "daily@2026-11-26T09:00:00+00:00"
    assert alert.at == D1 + 5 * M
    assert alert.details["window_start"] == "2026-11-25T09:05:00+00:00"
    assert advance(engine, D1 + 7 * M) == []


def test_key_uses_the_batch_timezone() -> None:
    engine = started((deadline_batch(timezone="Asia/Tokyo"),))
    # T0 is 09:00 in Tokyo: the first start never alerts the deadline it starts at.
    [alert] = advance(engine, T0 + 25 * H)
    assert alert.key == "daily@2026-11-27T09:00:00+09:00"


def test_completion_inside_grace_counts() -> None:
    engine = started((deadline_batch(grace="5m"),))
    engine.handle(succeeded("a", D1 + 5 * M))
    assert advance(engine, D1 + 10 * M) == []


def test_decision_waits_for_the_kubernetes_watermark() -> None:
    engine = started()
    assert engine.handle(Tick(D1 + H)) == []
    assert engine.handle(Watermark(KUBERNETES, D1 - M)) == []
    # A completion learned late, but placed at its own time, still counts.
    engine.handle(succeeded("a", D1 - 2 * M))
    assert engine.handle(Watermark(KUBERNETES, D1 + H)) == []


def test_no_decision_without_any_watermark() -> None:
    engine = Engine(make_config(deadline_batch()), started_at=T0)
    assert engine.handle(Tick(D2 + H)) == []
    # Two deadlines judged in one walk: one incident, posted once, counting both.
    [alert] = engine.handle(Watermark(KUBERNETES, D2 + H))
    assert isinstance(alert, Post)
    assert alert.key == "daily@2026-11-26T09:00:00+00:00"
    assert alert.details["missed_count"] == 2
    assert alert.details["latest_deadline"] == iso(D2)


def test_late_completion_resolves_and_still_meets_the_next_window() -> None:
    engine = started()
    [alert] = advance(engine, D1 + M)
    engine.handle(succeeded("late", D1 + 30 * M))
    [resolved] = resolves(advance(engine, D1 + H))
    assert resolved.key == alert.key
    assert resolved.details["late_seconds"] == 30 * 60
    assert resolved.details["missed_count"] == 1
    # The late run lies in the next deadline's window: that deadline is met, not missed.
    assert advance(engine, D2 + M) == []


def test_one_miss_then_on_time_days_is_exactly_one_alert() -> None:
    engine = started()
    actions = advance(engine, D1 + M)
    for day in range(1, 8):
        engine.handle(succeeded(f"day{day}", D1 + day * 24 * H - H))  # 08:00, on time
        actions += advance(engine, D1 + day * 24 * H + M)
    assert [a.key for a in posts(actions)] == ["daily@2026-11-26T09:00:00+00:00"]
    [recovered] = resolves(actions)
    assert recovered.details["late_seconds"] == 23 * 3600


def test_further_misses_edit_the_open_incident_and_nothing_new_is_posted() -> None:
    engine = started()
    [first] = advance(engine, D1 + M)
    later = [a for day in (1, 2) for a in advance(engine, D1 + day * 24 * H + M)]
    assert posts(later) == []
    edits = [a for a in later if isinstance(a, Edit)]
    assert [(e.key, e.revision, e.details["missed_count"]) for e in edits] == [
        (first.key, 2, 2),
        (first.key, 3, 3),
    ]
    engine.handle(succeeded("back", D1 + 50 * H))
    [resolved] = resolves(advance(engine, D1 + 51 * H))
    assert (resolved.key, resolved.details["missed_count"]) == (first.key, 3)


def test_reminders_repeat_an_open_incident_every_remind_interval() -> None:
    engine = started(slack={"remind": "6h"})
    [alert] = advance(engine, D1 + M)
    assert advance(engine, D1 + 5 * H) == []
    [first] = advance(engine, D1 + 6 * H)
    assert isinstance(first, Remind)
    assert (first.key, first.parent) == (f"remind:{alert.key}@1", alert.key)
    assert advance(engine, D1 + 7 * H) == []
    # Down for three intervals: one reminder, numbered by the intervals elapsed.
    reminders = [a for a in advance(engine, D1 + 20 * H) if isinstance(a, Remind)]
    assert [r.key for r in reminders] == [f"remind:{alert.key}@3"]
    assert engine.next_wakeup() == D1 + 24 * H


def test_first_start_alerts_no_earlier_deadline_and_uses_recent_completions() -> None:
    start = D1 + H  # started after today's deadline
    engine = Engine(make_config(deadline_batch()), started_at=start)
    engine.handle(succeeded("yesterday", D1 - 23 * H))  # before today's deadline
    engine.handle(succeeded("this-morning", D1 + 30 * M))  # in tomorrow's window
    assert advance(engine, D2 + M) == []


def test_fixed_window_excludes_earlier_completions() -> None:
    engine = started((deadline_batch(window="2h"),))
    engine.handle(succeeded("too-early", D1 - 3 * H))
    [alert] = advance(engine, D1 + M)
    assert alert.details["window_start"] == "2026-11-26T07:00:00+00:00"


def test_restart_catches_up_deadlines_passed_while_down() -> None:
    config = make_config(deadline_batch())
    engine = Engine(config, started_at=T0)
    advance(engine, D1 - H)
    saved = json.loads(json.dumps(engine.to_json()))
    later = D2 + 48 * H + H  # four deadlines passed while down
    restored = Engine.restore(config, saved, now=later)
    restored.handle(succeeded("day2", D2 - 2 * H))  # still listable from the cluster
    actions = advance(restored, later)
    # Day 1 was missed; the day-2 run resolves it and meets day 2; days 3 and 4 are one
    # new incident, posted once.
    assert [(post.key, post.details["missed_count"]) for post in posts(actions)] == [
        ("daily@2026-11-26T09:00:00+00:00", 1),
        ("daily@2026-11-28T09:00:00+00:00", 2),
    ]
    assert [r.key for r in resolves(actions)] == ["daily@2026-11-26T09:00:00+00:00"]
    assert not [a for a in actions if isinstance(a, Edit)]


def test_job_failed_once_per_uid_with_reason() -> None:
    engine = started()
    [alert] = engine.handle(failed("u1", T0 + H))
    assert alert.kind == "job_failed"
    assert alert.key == "job_failed:ml/daily-u1@u1"
    assert alert.details["reason"] == "BackoffLimitExceeded"
    assert engine.handle(failed("u1", T0 + H)) == []


def test_failures_before_the_first_start_are_not_alerted() -> None:
    engine = started()
    assert engine.handle(failed("old", T0 - H)) == []


def test_notify_switch_silences_a_kind_for_a_batch() -> None:
    engine = started((deadline_batch(notify={"job_failed": False}),))
    assert engine.handle(failed("u1", T0 + H)) == []


def test_unmatched_jobs_alert_only_when_asked_and_route_there() -> None:
    engine = started()
    assert engine.handle(failed("u1", T0 + H, cronjob="other")) == []
    engine = started(
        (deadline_batch(),),
        unmatched={"notify": {"job_failed": True}, "slack": {"channel": "#errors"}},
    )
    [alert] = engine.handle(failed("u1", T0 + H, cronjob="other"))
    assert isinstance(alert, Post)
    assert (alert.batch, alert.route) == ("", Route("errors", ""))


def test_actions_carry_a_route_not_slack_fields() -> None:
    route = {"channel": "#recommend", "mention": "<!subteam^S0123>"}
    engine = started((deadline_batch(slack=route),))
    [alert] = engine.handle(failed("u1", T0 + H))
    assert isinstance(alert, Post)
    assert alert.route == Route("errors", alert.batch)
    assert not hasattr(alert, "channel")
    assert not hasattr(alert, "mention")


def traceback_seen(job: str | None, second: int = 0) -> TracebackSeen:
    return TracebackSeen(
        namespace="ml",
        pod=f"{job}-pod",
        container="main",
        job=job,
        time=T0 + H + timedelta(seconds=second),
        cronjob="daily" if job else None,
        first_line="Traceback (most recent call last):",
        final_line="ValueError: boom",
    )


def test_traceback_once_per_pod_and_time() -> None:
    engine = started()
    [alert] = engine.handle(traceback_seen("daily-1"))
    assert alert.key == "traceback:ml/daily-1-pod/main@2026-11-26T01:00:00+00:00"
    assert alert.details["final_line"] == "ValueError: boom"
    assert engine.handle(traceback_seen("daily-1")) == []
    assert len(engine.handle(traceback_seen("daily-1", second=5))) == 1


def test_traceback_of_unknown_job_is_unmatched() -> None:
    engine = started(
        (deadline_batch(),), unmatched={"notify": {"job_failed": True, "traceback": False}}
    )
    assert engine.handle(traceback_seen(None)) == []


def test_freshness_stale_then_recovered_then_new_episode() -> None:
    batch = {"name": "fresh", "match": {"cronjob": "fresh"}, "freshness": "30m"}
    engine = started((batch,))
    assert advance(engine, T0 + 30 * M) == []
    [stale] = advance(engine, T0 + 31 * M)
    assert stale.key == "stale:fresh@2026-11-26T00:30:00+00:00"
    assert stale.at == T0 + 30 * M
    engine.handle(succeeded("s1", T0 + 40 * M, cronjob="fresh"))
    [recovered] = advance(engine, T0 + 41 * M)
    assert recovered.key == stale.key
    [again] = advance(engine, T0 + 71 * M)
    assert again.key == "stale:fresh@2026-11-26T01:10:00+00:00"


def test_source_unreachable_longer_than_degraded_after_then_back() -> None:
    engine = started()
    engine.handle(SourceHealth(KUBERNETES, reachable=False, last_contact=T0, detail="refused"))
    assert engine.handle(Tick(T0 + 5 * M)) == []
    [degraded] = engine.handle(Tick(T0 + 5 * M + timedelta(seconds=1)))
    assert degraded.key == "degraded:kubernetes@2026-11-26T00:00:00+00:00"
    assert engine.handle(Tick(T0 + 10 * M)) == []
    [back] = engine.handle(SourceHealth(KUBERNETES, reachable=True, last_contact=T0 + 11 * M))
    assert back.key == degraded.key


def test_bad_reload_alerts_once_and_good_reload_resolves() -> None:
    engine = started()
    [alert] = engine.handle(ConfigRejected(at=T0 + H, errors=("a.yaml:1:1: bad",)))
    assert alert.kind == "monitor_degraded"
    assert alert.key.startswith("degraded:config@")
    assert engine.handle(ConfigRejected(at=T0 + 2 * H, errors=("again",))) == []
    [resolved] = engine.handle(ConfigReplaced(make_config(deadline_batch()), at=T0 + 3 * H))
    assert resolved.key == alert.key


def test_reload_added_batch_starts_clean_and_removed_batch_drops_decisions() -> None:
    engine = started()
    other = deadline_batch("other", cron="30 9 * * *")
    reload_at = D1 + 10 * M
    engine.handle(Tick(reload_at))
    engine.handle(ConfigReplaced(make_config(other), at=reload_at))
    keys = [post.key for post in posts(advance(engine, D1 + H))]
    # "daily" is gone (its 09:00 decision is dropped); "other" judges from the reload on.
    assert keys == ["other@2026-11-26T09:30:00+00:00"]


def test_changed_schedule_never_realerts_an_alerted_key() -> None:
    engine = started()
    [alert] = advance(engine, D1 + M)
    retimed = make_config(deadline_batch(grace="1m"))
    engine.handle(ConfigReplaced(retimed, at=D1 + 2 * M))
    back = make_config(deadline_batch())
    engine.handle(ConfigReplaced(back, at=D1 - H))  # a reload cannot rewind judgement
    assert [p.key for p in posts(advance(engine, D1 + H))] == []
    # The open alert survives the re-timing and still resolves.
    engine.handle(succeeded("late", D1 + 2 * H))
    assert [r.key for r in resolves(advance(engine, D1 + 3 * H))] == [alert.key]


def test_job_gone_does_not_undo_a_completion() -> None:
    engine = started()
    engine.handle(succeeded("a", D1 - M))
    engine.handle(JobGone("a", "ml", "daily-a"))
    assert advance(engine, D1 + M) == []


def test_state_round_trip_resumes_exactly() -> None:
    config = make_config(deadline_batch(grace="5m"))
    engine = Engine(config, started_at=T0)
    advance(engine, D1 + 10 * M)
    engine.handle(succeeded("late", D1 + 50 * M))
    saved = json.loads(json.dumps(engine.to_json()))
    restored = Engine.restore(config, saved, now=engine.now)
    assert restored.to_json() == engine.to_json()
    assert advance(restored, D1 + H) == advance(engine, D1 + H)


def test_next_wakeup_is_the_next_decision_instant() -> None:
    engine = started((deadline_batch(grace="5m"),))
    assert engine.next_wakeup() == D1 + 5 * M
    advance(engine, D1 + 6 * M)
    assert engine.next_wakeup() == D2 + 5 * M


def judged_misses(engine: Engine, start: datetime, end: datetime) -> list[str]:
    """Every missed deadline, in the batch's zone, advancing an hour at a time."""
    missed: list[str] = []
    at = start
    while at < end:
        at += H
        for action in advance(engine, at):
            if isinstance(action, Post):
                missed.append(action.details["deadline"])
            elif isinstance(action, Edit):
                missed.append(action.details["latest_deadline"])
    return missed


def test_dst_gap_and_repeated_hour_deadlines_are_judged_exactly_once() -> None:
    batch = deadline_batch(cron="30 2 * * *", timezone="America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    engine = Engine(make_config(batch), started_at=start)
    assert judged_misses(engine, start, datetime(2026, 3, 10, 12, tzinfo=UTC)) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    batch = deadline_batch(cron="*/30 1 * * *", timezone="America/New_York")
    start = datetime(2026, 11, 1, 4, tzinfo=UTC)
    engine = Engine(make_config(batch), started_at=start)
    assert judged_misses(engine, start, datetime(2026, 11, 1, 12, tzinfo=UTC)) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
    ]


def test_status_reports_state_per_batch() -> None:
    fresh = {"name": "fresh", "match": {"cronjob": "fresh"}, "freshness": "30m"}
    engine = started((deadline_batch(), fresh))
    status = {entry["name"]: entry for entry in engine.status()}
    assert status["daily"]["state"] == "ok"
    assert status["daily"]["next_deadline"] == "2026-11-26T09:00:00+00:00"
    assert status["fresh"]["rule"] == "success every 30m"
    advance(engine, D1 - 30 * M)
    status = {entry["name"]: entry for entry in engine.status()}
    assert status["daily"]["state"] == "due"
    assert status["fresh"]["state"] == "stale"
    [alert] = advance(engine, D1 + M)
    status = {entry["name"]: entry for entry in engine.status()}
    assert status["daily"]["state"] == "missed"
    assert status["daily"]["open_alerts"] == [alert.key]
    engine.handle(failed("u1", D1 + 2 * M))
    engine.handle(succeeded("ok", D1 + 3 * M))
    advance(engine, D1 + 4 * M)
    status = {entry["name"]: entry for entry in engine.status()}
    assert status["daily"]["state"] == "ok"
    assert status["daily"]["last_success"] == "2026-11-26T09:03:00+00:00"


def test_a_late_success_from_before_a_stale_spell_neither_ends_it_nor_stalls_the_engine() -> None:
    """A success delivered long after it happened (Cloud Logging's lag, a relist) that
    predates the spell: the batch stayed stale, and the engine keeps going."""
    from monitor.core.facts import KUBERNETES as SOURCE

    batch = {"name": "fresh", "match": {"namespace": "ml", "cronjob": "fresh"},
             "freshness": "1d"}  # fmt: skip
    engine = Engine(make_config(batch), started_at=T0)
    [stale] = advance(engine, T0 + 48 * H)
    assert stale.kind == "stale"
    assert engine.handle(succeeded("old", T0 + 8 * H, cronjob="fresh")) == []  # not a recovery
    ticked = engine.handle(Tick(T0 + 49 * H))  # returns: the engine is not stuck
    assert [type(a).__name__ for a in ticked] == ["Remind"]  # the spell goes on (24 h)
    assert engine.handle(Watermark(SOURCE, T0 + 49 * H)) == []  # still one spell
    engine.handle(succeeded("new", T0 + 50 * H, cronjob="fresh"))
    [recovered] = resolves(advance(engine, T0 + 51 * H))
    assert recovered.key == stale.key
