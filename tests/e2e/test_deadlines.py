"""Deadlines through the real daemon: missed on time, met in silence, late then recovered."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from monitor.testing.stack import LocalStack, cron_at, seconds_ahead
from monitor.testing.wait import wait_until


def kinds(stack: LocalStack) -> list[str]:
    return [message.payload.get("kind", "") for message in stack.slack.messages]


def test_missed_deadline_is_posted_within_two_seconds_and_resolved_when_late(
    stack: LocalStack,
) -> None:
    deadline = seconds_ahead(6)
    config = stack.write_config(
        {
            "batches": [
                {
                    "name": "late",
                    "match": {"namespace": "ml", "cronjob": "late"},
                    "deadline": cron_at(deadline),
                },
                {
                    "name": "on-time",
                    "match": {"namespace": "ml", "cronjob": "on-time"},
                    "deadline": cron_at(deadline),
                },
            ]
        }
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    stack.kube.jobs.create_job("ml", "on-time-1", cronjob="on-time")
    stack.kube.jobs.complete_job("ml", "on-time-1")
    stack.kube.jobs.create_job("ml", "late-1", cronjob="late")

    wait_until(lambda: len(stack.slack.messages) >= 1, timeout=deadline_wait(deadline))
    [alert] = stack.slack.messages
    received = time.time() - (time.monotonic() - alert.arrived)
    assert alert.payload == {
        "kind": "missed_deadline",
        "batch": "late",
        "key": f"late@{deadline.isoformat()}",
    }
    assert received - deadline.timestamp() <= 2.0

    stack.kube.jobs.complete_job("ml", "late-1")
    wait_until(lambda: len(stack.slack.messages) == 2 and stack.slack.updates, timeout=10)
    reply = stack.slack.messages[1]
    assert reply.payload["kind"] == "recovered"
    assert reply.thread_ts == alert.ts
    assert stack.slack.message(alert.ts).text.startswith("[Resolved]")
    assert daemon.terminate() == 0
    assert kinds(stack) == ["missed_deadline", "recovered"]


def deadline_wait(deadline: datetime) -> float:
    return max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 5.0
