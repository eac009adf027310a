"""Two witnesses of one run (the API, and the Job events from Cloud Logging): a run counts
once whoever tells first, an event's family comes from the CronJob naming rule, and after
a restart the deadlines that passed while down wait (boundedly) for the events."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from monitor.core.engine import Engine
from monitor.core.facts import JOB_EVENTS, JobSeen, Watermark
from monitor.core.witnesses import cronjob_of
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

HOUR = timedelta(hours=1)
NINE = T0 + 9 * HOUR  # the daily deadline
BOUND = timedelta(minutes=2)


def by_event(job: JobSeen) -> JobSeen:
    """The same end as the events witness tells it: no start, labels or owner reference."""
    return dataclasses.replace(job, witness="events", labels={}, start_time=None, created_at=None)


def engine_for(*batches: dict[str, object]) -> Engine:
    config = make_config(*(batches or (deadline_batch(),)))
    engine = Engine(config, started_at=T0)
    advance(engine, T0 + HOUR)
    return engine


def keys_of(actions: list[object]) -> list[str]:
    return [post.key for post in posts(actions)]  # type: ignore[arg-type]


def test_an_end_told_by_both_witnesses_counts_once_whichever_tells_first() -> None:
    for first_events in (True, False):
        engine = engine_for()
        job = succeeded("u1", NINE - HOUR)
        told = [by_event(job), job] if first_events else [job, by_event(job)]
        for fact in told:
            engine.handle(fact)
        actions = advance(engine, NINE + timedelta(minutes=1))
        assert posts(actions) == []  # met: no miss either way
        [decision] = [d for d in engine.take_decisions() if d.reason in ("met", "missed")]
        assert decision.reason == "met"


def test_a_failure_told_by_both_witnesses_is_one_alert() -> None:
    engine = engine_for()
    job = failed("u1", T0 + 2 * HOUR)
    first = keys_of(engine.handle(job))
    again = keys_of(engine.handle(by_event(job)))
    assert first == ["job_failed:ml/daily-u1@u1"]
    assert again == []
    engine = engine_for()
    assert keys_of(engine.handle(by_event(job))) == ["job_failed:ml/daily-u1@u1"]
    assert keys_of(engine.handle(job)) == []


def test_an_event_never_overrides_what_the_api_said_of_the_job() -> None:
    """The API's identity wins: an event whose name-derived family is another batch's does
    not count for that batch when the API already reported the end."""
    engine = engine_for(deadline_batch("daily"), deadline_batch("other"))
    api = dataclasses.replace(succeeded("u1", NINE - HOUR, cronjob="daily"), name="other-42")
    engine.handle(api)
    engine.handle(by_event(dataclasses.replace(api, cronjob="other")))
    advance(engine, NINE + timedelta(minutes=1))
    reasons = {d.batch: d.reason for d in engine.take_decisions() if d.reason != "pending"}
    assert reasons == {"daily": "met", "other": "missed"}


def test_an_event_for_a_job_the_api_never_showed_matches_by_the_cronjob_naming_rule() -> None:
    engine = engine_for(
        deadline_batch("daily"),
        {"name": "labelled", "match": {"namespace": "ml", "labels": {"team": "a"}},
         "deadline": "0 9 * * *"},
    )  # fmt: skip
    engine.handle(by_event(succeeded("u1", NINE - HOUR)))
    advance(engine, NINE + timedelta(minutes=1))
    reasons = {d.batch: d.reason for d in engine.take_decisions() if d.reason != "pending"}
    assert reasons == {"daily": "met", "labelled": "missed"}  # labels cannot match an event


def test_the_run_history_keeps_the_start_the_api_showed_when_an_event_ends_the_run() -> None:
    engine = engine_for()
    started = NINE - 2 * HOUR
    running = JobSeen("u1", "ml", "daily-1", cronjob="daily", start_time=started)
    engine.handle(running)
    engine.handle(by_event(succeeded("u1", NINE - HOUR)))
    recorded = engine.runs["daily"].ended_run("u1")
    assert recorded is not None
    assert (recorded.outcome, recorded.started) == ("succeeded", started)


def restarted(engine: Engine, at: object) -> Engine:
    """The engine as a restart at `at` resumes it, waiting for the events."""
    resumed = Engine.restore(engine.config, engine.to_json(), at)  # type: ignore[arg-type]
    resumed.await_events(at, BOUND)  # type: ignore[arg-type]
    return resumed


def test_after_a_restart_a_deadline_passed_while_down_waits_for_the_events() -> None:
    engine = engine_for()
    restart = NINE + HOUR  # down from before 09:00 until 10:00
    engine = restarted(engine, restart)
    assert posts(advance(engine, restart)) == []  # the Kubernetes view caught up: waiting
    # The Job completed at 08:30 and was deleted while the daemon was down: only its event
    # tells, a few seconds after the restart.
    engine.handle(by_event(succeeded("u1", NINE - timedelta(minutes=30))))
    actions = engine.handle(Watermark(JOB_EVENTS, restart + timedelta(seconds=5)))
    assert posts(actions) == []
    assert [d.reason for d in engine.take_decisions() if d.reason != "pending"] == ["met"]


def test_without_events_the_wait_ends_at_its_bound_and_the_miss_is_posted_once() -> None:
    engine = restarted(engine_for(), NINE + HOUR)
    assert posts(advance(engine, NINE + HOUR + timedelta(minutes=1))) == []
    assert engine.next_wakeup() == NINE + HOUR + BOUND
    actions = advance(engine, NINE + HOUR + BOUND)
    assert keys_of(actions) == ["daily@2026-11-26T09:00:00+00:00"]
    assert engine.witnesses.lapsed_at == NINE + HOUR + BOUND
    assert keys_of(advance(engine, NINE + HOUR + BOUND + HOUR)) == []


def test_deadlines_after_the_restart_never_wait_for_the_events() -> None:
    hourly = deadline_batch("hourly", "30 1-23 * * *")
    engine = restarted(engine_for(hourly), T0 + 2 * HOUR)
    # Due 01:30 (before the restart at 02:00): waits, and 02:30 of the same batch behind it.
    assert keys_of(advance(engine, T0 + 2 * HOUR + timedelta(minutes=31))) == []
    caught_up = engine.handle(Watermark(JOB_EVENTS, T0 + 2 * HOUR))  # read up to the restart
    caught_up += advance(engine, T0 + 2 * HOUR + timedelta(minutes=31))
    assert keys_of(caught_up) == ["hourly@2026-11-26T01:30:00+00:00"]  # 02:30 is its repeat
    # Another batch whose first deadline is after the restart is judged live.
    late = restarted(engine_for(deadline_batch("late", "30 2 * * *")), T0 + 2 * HOUR)
    assert keys_of(advance(late, T0 + 2 * HOUR + timedelta(minutes=31))) == [
        "late@2026-11-26T02:30:00+00:00"
    ]
    assert resolves(caught_up) == []


def test_the_cronjob_naming_rule() -> None:
    assert cronjob_of("nightly-29400000") == "nightly"
    assert cronjob_of("feature-build-29400000") == "feature-build"
    for not_a_cronjob_job in ("nightly", "nightly-", "-29400000", "nightly-2940x", "n-1²"):
        assert cronjob_of(not_a_cronjob_job) is None
