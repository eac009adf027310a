"""Deadlines and freshness through the real daemon: missed on time, grace, silence when met,
late then recovered, stale then recovered."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.testing.stack import LocalStack, seconds_ahead
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    batch_status,
    deadline_batch,
    decided_after,
    freshness_batch,
    kinds,
    now,
    of_kind,
    outbox_empty,
    received_at,
    spawn_configured,
    until,
)


def test_missed_deadline_is_posted_within_two_seconds_and_resolved_when_late(
    stack: LocalStack,
) -> None:
    deadline = seconds_ahead(6)
    config = stack.write_config(
        {"batches": [deadline_batch("late", deadline), deadline_batch("on-time", deadline)]}
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    stack.kube.jobs.create_job("ml", "on-time-1", cronjob="on-time")
    stack.kube.jobs.complete_job("ml", "on-time-1")
    stack.kube.jobs.create_job("ml", "late-1", cronjob="late")

    wait_until(lambda: len(stack.slack.messages) >= 1, timeout=until(deadline))
    [alert] = stack.slack.messages
    assert alert.payload == {
        "kind": "missed_deadline",
        "batch": "late",
        "key": f"late@{deadline.isoformat()}",
    }
    assert received_at(alert) - deadline.timestamp() <= timing_bound(2.0)

    stack.kube.jobs.complete_job("ml", "late-1")
    wait_until(lambda: len(stack.slack.messages) == 2 and stack.slack.updates, timeout=10)
    reply = stack.slack.messages[1]
    assert reply.payload["kind"] == "recovered"
    assert reply.thread_ts == alert.ts
    assert stack.slack.message(alert.ts).text.startswith("[Resolved]")
    wait_until(lambda: batch_status(daemon, "late")["state"] != "missed", timeout=3)
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["missed_deadline", "recovered"]


def test_grace_delays_the_alert_and_completions_in_time_stay_silent(stack: LocalStack) -> None:
    """Grace moves the decision to deadline + grace; a completion before the deadline or
    inside the grace period is silence, proven after the daemon has judged the deadline."""
    grace = 3
    daemon, deadline = spawn_configured(
        stack,
        {},
        3,
        lambda deadline: [
            deadline_batch("missing", deadline, grace=f"{grace}s"),
            deadline_batch("early", deadline, grace=f"{grace}s"),
            deadline_batch("in-grace", deadline, grace=f"{grace}s"),
        ],
    )
    stack.kube.jobs.create_job("ml", "early-1", cronjob="early")
    stack.kube.jobs.complete_job("ml", "early-1")
    stack.kube.jobs.create_job("ml", "in-grace-1", cronjob="in-grace")
    # Complete inside (deadline, deadline + grace]: Kubernetes stamps completionTime a
    # second after this call, to the whole second.
    wait_until(lambda: now().timestamp() >= deadline.timestamp() + 0.2, timeout=until(deadline))
    stack.kube.jobs.complete_job("ml", "in-grace-1")

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline, grace + 5))
    [alert] = stack.slack.messages
    assert alert.payload["batch"] == "missing"
    assert alert.payload["key"] == f"missing@{deadline.isoformat()}"
    lateness = received_at(alert) - (deadline.timestamp() + grace)
    assert -0.1 <= lateness <= timing_bound(2.0), lateness

    for name in ("early", "in-grace"):
        wait_until(lambda name=name: decided_after(daemon, name, deadline), timeout=5)
        status = batch_status(daemon, name)
        assert status["state"] == "ok", status
        assert status["last_success"] is not None
        assert status["open_alerts"] == []
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert kinds(stack.slack) == ["missed_deadline"]
    assert daemon.terminate() == 0


def test_stale_freshness_batch_alerts_then_recovers(stack: LocalStack) -> None:
    started = now()
    config = stack.write_config(
        {"batches": [freshness_batch("refresh", "4s"), freshness_batch("busy", "1h")]}
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    stack.kube.jobs.create_job("ml", "busy-1", cronjob="busy")
    stack.kube.jobs.complete_job("ml", "busy-1")

    # Without a success the clock starts at the first start: stale 4 s after it.
    stale_at = datetime.fromisoformat(batch_status(daemon, "refresh")["next_deadline"])
    assert started < stale_at <= now() + timedelta(seconds=4)

    wait_until(lambda: of_kind(stack.slack, "stale"), timeout=until(stale_at))
    [alert] = stack.slack.messages
    assert alert.payload["batch"] == "refresh"
    assert 0 <= received_at(alert) - stale_at.timestamp() <= timing_bound(2.0)
    wait_until(lambda: batch_status(daemon, "refresh")["state"] == "stale", timeout=3)

    stack.kube.jobs.create_job("ml", "refresh-1", cronjob="refresh")
    stack.kube.jobs.complete_job("ml", "refresh-1")
    wait_until(lambda: of_kind(stack.slack, "recovered") and stack.slack.updates, timeout=5)
    [reply] = of_kind(stack.slack, "recovered")
    assert reply.thread_ts == alert.ts
    assert stack.slack.message(alert.ts).text.startswith("[Resolved]")
    wait_until(lambda: batch_status(daemon, "refresh")["state"] in ("ok", "due"), timeout=3)
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["stale", "recovered"]
