"""Slack misbehaving through the real daemon: a 429 storm and an outage delay alerts but
never drop, reorder or repeat them; SIGTERM delivers what is queued or saves it."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from monitor.testing.stack import LocalStack, MonitorProcess
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    deadline_batch,
    duplicates,
    freshness_batch,
    keys,
    metric,
    now,
    of_kind,
    received_at,
    spawn_configured,
    until,
)

JOBS = 6


def fail_jobs(stack: LocalStack, names: list[str]) -> list[str]:
    """Create and fail Jobs one after the other; their job_failed keys in that order."""
    expected = []
    for name in names:
        job = stack.kube.jobs.create_job("ml", name, cronjob="train")
        stack.kube.jobs.fail_job("ml", name)
        expected.append(f"job_failed:ml/{name}@{job['metadata']['uid']}")
    return expected


def queued(daemon: MonitorProcess) -> float | None:
    """Alerts decided but not yet delivered (the status refresh updates the gauge)."""
    daemon.status()
    return metric(daemon, "sla_monitor_outbox_depth")


def start(stack: LocalStack) -> MonitorProcess:
    config = stack.write_config({"batches": [freshness_batch("train", "1h")]})
    daemon = stack.spawn(config)
    daemon.wait_ready()
    return daemon


def test_rate_limit_storm_delays_but_delivers_every_alert_in_order_once(
    stack: LocalStack,
) -> None:
    daemon = start(stack)
    stack.slack.rate_limit(times=5, retry_after=1)
    expected = fail_jobs(stack, [f"storm-{index}" for index in range(JOBS)])

    wait_until(lambda: len(stack.slack.messages) >= JOBS, timeout=20)
    assert sum(r.status == 429 for r in stack.slack.requests) == 5
    assert keys(stack.slack) == expected
    assert daemon.terminate() == 0
    assert duplicates(stack.slack) == {}


def test_slack_outage_delays_but_delivers_every_alert_in_order_once(stack: LocalStack) -> None:
    daemon = start(stack)
    stack.slack.down_for(5)
    outage_started = time.monotonic()
    expected = fail_jobs(stack, [f"outage-{index}" for index in range(3)])
    wait_until(lambda: queued(daemon) == 3, timeout=5)
    stack.slack.down_for(3, mode="503")  # then it answers 503 for a while
    expected += fail_jobs(stack, [f"outage-{index}" for index in range(3, JOBS)])

    wait_until(lambda: len(stack.slack.messages) >= JOBS, timeout=30)
    assert stack.slack.messages[0].arrived >= outage_started + 3
    assert keys(stack.slack) == expected
    assert daemon.terminate() == 0
    assert duplicates(stack.slack) == {}


def pending_keys(state_file: Path) -> list[str]:
    document = json.loads(state_file.read_text())
    return [entry["action"]["key"] for entry in document["outbox"]["pending"]]


def test_sigterm_delivers_queued_alerts_before_exiting(stack: LocalStack) -> None:
    daemon = start(stack)
    stack.slack.rate_limit(times=3, retry_after=1)
    expected = fail_jobs(stack, [f"term-{index}" for index in range(3)])
    wait_until(lambda: any(r.status == 429 for r in stack.slack.requests), timeout=5)

    asked = time.monotonic()
    assert daemon.terminate() == 0
    assert time.monotonic() - asked <= timing_bound(10.0)
    assert keys(stack.slack) == expected
    assert pending_keys(stack.workdir / "state-outbox.json") == []


def test_sigterm_during_an_outage_saves_alerts_for_the_next_start(stack: LocalStack) -> None:
    daemon = start(stack)
    stack.slack.down_for(60)
    expected = fail_jobs(stack, [f"saved-{index}" for index in range(3)])

    wait_until(lambda: queued(daemon) == 3, timeout=5)
    asked = time.monotonic()
    assert daemon.terminate() == 0
    assert time.monotonic() - asked <= timing_bound(10.0)
    assert stack.slack.messages == []
    assert pending_keys(stack.workdir / "state-outbox.json") == expected

    stack.slack.down_for(0)
    config = stack.workdir / "sla.yaml"
    second = stack.spawn(config, name="monitor-2")
    second.wait_ready()
    wait_until(lambda: len(stack.slack.messages) >= 3, timeout=10)
    assert keys(stack.slack) == expected
    wait_until(lambda: pending_keys(stack.workdir / "state-outbox.json") == [], timeout=5)
    assert second.terminate() == 0
    assert duplicates(stack.slack) == {}


def test_a_failure_storm_is_digested_and_a_deadline_inside_it_is_posted_at_once(
    stack: LocalStack,
) -> None:
    storm = 150
    daemon, deadline = spawn_configured(
        stack,
        {},
        lead=12,
        batches=lambda at: [deadline_batch("report", at), freshness_batch("train", "1h")],
    )
    # The storm starts 1 s before the deadline and lasts about 2 s.
    wait_until(lambda: now() >= deadline - timedelta(seconds=1), timeout=until(deadline))
    began = time.monotonic()
    expected = []
    for index in range(storm):
        expected += fail_jobs(stack, [f"storm-{index}"])
        time.sleep(2.0 / storm)
    wait_until(lambda: len(of_kind(stack.slack, "missed_deadline")) == 1, timeout=until(deadline))
    [missed] = of_kind(stack.slack, "missed_deadline")
    late = received_at(missed) - deadline.timestamp()
    assert late <= timing_bound(2.0)

    wait_until(lambda: set(expected) <= set(keys(stack.slack)), timeout=60)
    delivered = keys(stack.slack)
    assert sorted(delivered) == sorted([*expected, missed.payload["key"]])  # each once
    in_first_minute = [m for m in stack.slack.messages if m.arrived - began <= 60]
    assert len(in_first_minute) <= 15
    digests = of_kind(stack.slack, "digest")
    assert digests
    assert all(m.payload["batch"] == "" for m in digests)
    last = max(m.arrived for m in stack.slack.messages) - began
    print(
        f"storm of {storm}: {len(in_first_minute)} messages in the first minute, "
        f"{len(digests)} digest(s), last key delivered {last:.1f} s after the storm began, "
        f"missed_deadline posted {late:.2f} s after its deadline"
    )
    assert daemon.terminate() == 0
