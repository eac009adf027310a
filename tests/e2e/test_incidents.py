"""Incidents through the real daemon: a miss followed by on-time runs is one alert, a batch
broken for a while is one message edited in place, and a grace-only reload after a met
deadline raises nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.testing.stack import LocalStack, MonitorProcess
from monitor.testing.wait import wait_until
from tests.e2e.helpers import (
    batch_status,
    deadline_batch,
    decided_after,
    freshness_batch,
    kinds,
    metric,
    now,
    of_kind,
    outbox_empty,
    reconfigure,
    spawn_configured,
    until,
)


def periodic_batch(name: str, every_seconds: int) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"namespace": "ml", "cronjob": name},
        "deadline": f"*/{every_seconds} * * * * *",
    }


def started_with(stack: LocalStack, batch: dict[str, Any]) -> tuple[MonitorProcess, datetime]:
    """A ready daemon that gained `batch` by reload; returns the batch's first deadline."""
    path = stack.write_config({"batches": [freshness_batch("placeholder", "1d")]})
    daemon = stack.spawn(path)
    daemon.wait_ready()
    reconfigure(stack, daemon, {"batches": [batch]})
    return daemon, datetime.fromisoformat(batch_status(daemon, batch["name"])["next_deadline"])


def next_deadline(daemon: MonitorProcess, name: str) -> datetime:
    return datetime.fromisoformat(batch_status(daemon, name)["next_deadline"])


def test_one_miss_followed_by_on_time_runs_raises_exactly_one_alert(stack: LocalStack) -> None:
    daemon, first = started_with(stack, periodic_batch("every6", 6))
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(first, 10))
    [alert] = of_kind(stack.slack, "missed_deadline")
    assert alert.payload["key"] == f"every6@{first.isoformat()}"

    # From now on every window holds a run: each completes before the deadline after it.
    judged = first
    for run in range(1, 4):
        stack.kube.jobs.create_job("ml", f"every6-{run}", cronjob="every6")
        stack.kube.jobs.complete_job("ml", f"every6-{run}")
        # The status may still show the deadline just judged (it refreshes by itself).
        wait_until(lambda j=judged: decided_after(daemon, "every6", j), timeout=until(judged))
        upcoming = next_deadline(daemon, "every6")
        wait_until(lambda u=upcoming: decided_after(daemon, "every6", u), timeout=until(upcoming))
        judged = upcoming
    wait_until(lambda: outbox_empty(daemon), timeout=5)

    assert kinds(stack.slack) == ["missed_deadline", "recovered"]
    [reply] = of_kind(stack.slack, "recovered")
    assert reply.thread_ts == alert.ts
    assert stack.slack.updates, "the alert was not edited to show it resolved"
    assert batch_status(daemon, "every6")["open_alerts"] == []
    assert judged > first + timedelta(seconds=12)
    assert daemon.terminate() == 0


def test_a_batch_broken_for_a_while_is_one_message_edited_in_place(stack: LocalStack) -> None:
    daemon, first = started_with(stack, periodic_batch("every2", 2))
    later = first + timedelta(seconds=10)
    wait_until(lambda: decided_after(daemon, "every2", later), timeout=until(later, 10))
    wait_until(lambda: outbox_empty(daemon), timeout=5)

    [alert] = stack.slack.messages
    assert alert.payload["key"] == f"every2@{first.isoformat()}"
    assert stack.slack.updates, "further misses did not edit the alert"
    assert {update.ts for update in stack.slack.updates} == {alert.ts}
    final = stack.slack.message(alert.ts)
    assert final.payload == alert.payload  # the edit keeps the alert's metadata
    assert final.text is not None
    assert "deadlines missed in a row" in final.text
    assert daemon.terminate() == 0
    assert len(stack.slack.messages) == 1


def test_a_grace_only_reload_after_a_met_deadline_raises_nothing(stack: LocalStack) -> None:
    daemon, deadline = spawn_configured(
        stack, {}, 4, lambda at: [deadline_batch("met", at, grace="4s")]
    )
    stack.kube.jobs.create_job("ml", "met-1", cronjob="met")
    stack.kube.jobs.complete_job("ml", "met-1")
    wait_until(lambda: batch_status(daemon, "met")["last_success"], timeout=5)
    # Past the deadline, inside the grace: the deadline is met but not yet decided.
    wait_until(lambda: now() >= deadline + timedelta(seconds=1), timeout=until(deadline))
    reloads = 'sla_monitor_config_reloads_total{result="ok"}'
    before = metric(daemon, reloads) or 0
    reconfigure(stack, daemon, {"batches": [deadline_batch("met", deadline, grace="6s")]})
    wait_until(lambda: (metric(daemon, reloads) or 0) > before, timeout=5)

    decided = deadline + timedelta(seconds=6)
    wait_until(lambda: decided_after(daemon, "met", deadline), timeout=until(decided, 10))
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert stack.slack.messages == []
    assert batch_status(daemon, "met")["state"] == "ok"
    assert daemon.terminate() == 0
