"""Run history, the on-time rate and decision reasons: what the engine remembers of runs."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from monitor.core.engine import Engine
from monitor.core.facts import ConfigReplaced, JobSeen
from monitor.core.runs import KEPT_DURATIONS, SHOWN_RUNS, RecentSuccesses, RunHistory
from monitor.notify.render import RenderSettings, render_post
from tests.unit.engine_helpers import (
    T0,
    advance,
    deadline_batch,
    failed,
    make_config,
    succeeded,
)

H = timedelta(hours=1)
DAY = timedelta(days=1)


def run(uid: str, start_h: float, minutes: float | None, outcome: str = "succeeded") -> JobSeen:
    """A run of `daily` started `start_h` hours after T0, lasting `minutes` (None: running)."""
    started = T0 + timedelta(hours=start_h)
    end = started + timedelta(minutes=minutes) if minutes is not None else None
    outcome = outcome if end is not None else "running"
    return JobSeen(
        uid=uid,
        namespace="ml",
        name=f"daily-{uid}",
        cronjob="daily",
        start_time=started,
        completion_time=end if outcome == "succeeded" else None,
        failed_at=end if outcome == "failed" else None,
        reason="BackoffLimitExceeded" if outcome == "failed" else None,
        outcome=outcome,  # type: ignore[arg-type]
    )


def test_recent_runs_are_newest_first_bounded_and_updated_in_place() -> None:
    history = RunHistory()
    for n in range(SHOWN_RUNS + 5):
        history.seen(run(f"u{n}", n, None))
    history.seen(run("u24", 24, 30))  # the newest one finished
    recent = history.recent()
    assert len(recent) == SHOWN_RUNS
    assert [r.uid for r in recent[:2]] == ["u24", "u23"]
    assert recent[0].outcome == "succeeded"
    assert recent[0].duration_seconds == 1800
    assert "u4" not in {r.uid for r in recent}  # the oldest ones left


def test_a_relist_never_counts_a_duration_twice() -> None:
    history = RunHistory()
    assert history.seen(run("a", 0, 10))
    assert history.seen(run("b", 24, 20))
    assert not history.seen(run("a", 0, 10))  # relisted after a restart
    assert not history.seen(run("b", 24, 20))
    assert not history.seen(run("c", 30, None))  # running: no duration
    assert not history.seen(run("d", 31, 5, "failed"))  # failed: not a success duration
    assert history.durations == [600, 1200]
    restored = RunHistory.from_json(json.loads(json.dumps(history.to_json())))
    assert not restored.seen(run("b", 24, 20))
    assert restored.durations == [600, 1200]


def test_duration_quantiles_need_enough_successes() -> None:
    history = RunHistory()
    for n, minutes in enumerate([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]):
        history.seen(run(f"u{n}", n * 24, minutes))
    assert history.duration_quantile(0.5) == 50 * 60
    assert history.duration_quantile(0.9) == 90 * 60
    assert history.duration_quantile(0.9, at_least=11) is None
    for n in range(KEPT_DURATIONS + 5):
        history.seen(run(f"v{n}", 1000 + n * 24, 1))
    assert len(history.durations) == KEPT_DURATIONS
    assert history.duration_quantile(0.9) == 60


def engine() -> Engine:
    config = make_config(deadline_batch(grace="10m"))
    return Engine(config, started_at=T0)


def test_status_lists_runs_in_the_batch_zone_and_the_on_time_rate() -> None:
    config = make_config(deadline_batch(grace="10m", timezone="Asia/Tokyo"))
    eng = Engine(config, started_at=T0)
    # 09:00 JST is 00:00 UTC (T0): T0 missed (no run), T0+1d met, T0+2d missed, T0+3d met.
    eng.handle(run("a", 23.5, 20))
    eng.handle(run("c", 71.5, 15))
    eng.handle(run("d", 72.5, None))
    advance(eng, T0 + 3 * DAY + H)
    [status] = eng.status()
    assert status["on_time_rate"] == 2 / 4
    assert [r["name"] for r in status["runs"]] == ["daily-d", "daily-c", "daily-a"]
    newest, latest_done = status["runs"][0], status["runs"][1]
    assert newest["outcome"] == "running"
    assert newest["finished"] is None
    assert newest["duration_seconds"] is None
    assert latest_done["started"] == "2026-11-29T08:30:00+09:00"
    assert latest_done["duration_seconds"] == 900
    assert status["duration_p50_seconds"] == 900


def test_no_decision_yet_means_no_on_time_rate() -> None:
    eng = engine()
    [status] = eng.status()
    assert status["on_time_rate"] is None
    assert status["runs"] == []


def test_decisions_say_why_met_missed_repeat_recovered() -> None:
    eng = engine()
    eng.handle(succeeded("a", T0 + 8 * H))
    advance(eng, T0 + 10 * H)  # day 1: met
    advance(eng, T0 + DAY + 10 * H)  # day 2: missed, an incident opens
    advance(eng, T0 + 2 * DAY + 10 * H)  # day 3: missed again, inside the incident
    eng.handle(succeeded("b", T0 + 2 * DAY + 11 * H))  # recovers
    advance(eng, T0 + 2 * DAY + 12 * H)
    reasons = [d.reason for d in eng.take_decisions()]
    assert reasons == ["met", "missed", "repeat", "recovered"]
    assert eng.take_decisions() == []


def test_a_muted_failure_is_suppressed_once_and_never_alerted_later() -> None:
    muted = deadline_batch(notify={"job_failed": False})
    eng = Engine(make_config(muted), started_at=T0)
    assert eng.handle(failed("u1", T0 + H)) == []
    assert eng.handle(failed("u1", T0 + H)) == []  # the same Job again (a MODIFIED event)
    assert [d.reason for d in eng.take_decisions()] == ["suppressed"]
    eng.handle(_reload(deadline_batch(), T0 + 2 * H))  # the switch turned on
    assert eng.handle(failed("u1", T0 + H)) == []  # decided already: not alerted late
    fresh = eng.handle(failed("u2", T0 + 3 * H))
    assert [a.key for a in fresh] == ["job_failed:ml/daily-u2@u2"]


def _reload(batch: dict[str, Any], at: datetime) -> ConfigReplaced:
    return ConfigReplaced(make_config(batch), at)


def test_runs_durations_and_the_record_survive_a_restart() -> None:
    eng = engine()
    eng.handle(run("a", 8, 30))
    advance(eng, T0 + 10 * H)
    advance(eng, T0 + DAY + 10 * H)
    saved = json.loads(eng.encoded())
    restored = Engine.restore(eng.config, saved, now=T0 + DAY + 11 * H)
    [before], [after] = eng.status(), restored.status()
    assert after["on_time_rate"] == before["on_time_rate"] == 0.5
    assert after["duration_p50_seconds"] == 1800
    assert after["runs"] == []  # runs themselves come back with the relist
    restored.handle(run("a", 8, 30))
    assert restored.status()[0]["runs"] == before["runs"]
    assert restored.runs["daily"].durations == [1800]  # the relist added nothing


def test_a_removed_batch_forgets_its_runs() -> None:
    eng = engine()
    eng.handle(run("a", 8, 30))
    other = dataclasses.replace(run("x", 8, 30), cronjob="other", name="other-x")
    eng.handle(other)
    eng.handle(_reload(deadline_batch("other"), T0 + 9 * H))
    assert set(eng.runs) == {"other"}


def test_a_missed_deadline_says_what_the_latest_run_did() -> None:
    eng = engine()
    for day in range(5):  # five on-time runs of 20 min: the p90 is known
        eng.handle(run(f"ok{day}", 8 + 24 * day, 20))
    advance(eng, T0 + 4 * DAY + 10 * H)
    eng.handle(run("stuck", 5 * 24 + 8, None))  # started at 08:00, still running
    missed = [a for a in advance(eng, T0 + 5 * DAY + 10 * H) if a.kind == "missed_deadline"]
    [alert] = missed
    latest = alert.details["latest_run"]
    assert latest["name"] == "daily-stuck"
    assert latest["outcome"] == "running"
    assert latest["running_seconds"] == 70 * 60  # 08:00 to 09:10 (deadline + grace)
    assert latest["p90_seconds"] == 20 * 60
    assert latest["hung"] is True
    text = render_post(alert, RenderSettings()).text  # type: ignore[arg-type]
    assert "Latest run daily-stuck has been running for 1 h 10 min" in text
    assert "(p90 duration 20 min): probably hung" in text


def test_a_missed_deadline_with_no_run_or_a_failed_one_says_so() -> None:
    eng = engine()
    [first] = [a for a in advance(eng, T0 + 10 * H) if a.kind == "missed_deadline"]
    assert first.details["latest_run"] == {"outcome": "none"}
    eng2 = engine()
    eng2.handle(dataclasses.replace(run("f", 8, 5, "failed"), reason="DeadlineExceeded"))
    [alert] = [a for a in advance(eng2, T0 + 10 * H) if a.kind == "missed_deadline"]
    assert alert.details["latest_run"]["outcome"] == "failed"
    assert alert.details["latest_run"]["reason"] == "DeadlineExceeded"


def test_an_ended_run_is_kept_as_the_run_it_shows_a_running_one_as_seen() -> None:
    labels = {"controller-uid": "u-1", "job-name": "daily-u-1", "team": "ml"}
    history = RunHistory()
    history.seen(dataclasses.replace(run("u-1", 1, None), labels=labels))
    running = history.running_state("u-1")
    assert running is not None
    assert history.ended_run("u-1") is None
    assert dict(running.labels) == labels  # an end read from its Event takes them over
    ended = dataclasses.replace(
        run("u-1", 1, 30, "failed"), labels=labels, message="Job has reached the backoff limit"
    )
    history.seen(ended)
    assert history.running_state("u-1") is None
    assert history.running() == []
    kept = history.ended_run("u-1")
    assert kept is not None
    assert not isinstance(kept, JobSeen)
    assert (kept.outcome, kept.reason, kept.finished) == ("failed", ended.reason, ended.failed_at)
    assert not history.vanished("u-1")  # an ended run is not forgotten as a deleted one
    [shown] = history.recent()
    assert (shown.name, shown.outcome, shown.reason) == ("daily-u-1", "failed", ended.reason)
    assert shown.duration_seconds == 30 * 60


def test_recent_successes_keep_the_last_ones_each_once_oldest_first() -> None:
    recent = RecentSuccesses(limit=3)
    jobs = [run(f"u-{n}", n, 5) for n in range(5)]
    for job in [jobs[0], jobs[1], jobs[0], jobs[2]]:  # a repeat is not kept twice
        recent.add(job)
    assert [job.uid for job in recent] == ["u-0", "u-1", "u-2"]
    recent.add(jobs[3])
    recent.add(jobs[4])
    assert [job.uid for job in recent] == ["u-2", "u-3", "u-4"]
    assert len(recent) == 3
    recent.add(jobs[0])  # forgotten, so kept again as the newest
    assert [job.uid for job in recent] == ["u-3", "u-4", "u-0"]
