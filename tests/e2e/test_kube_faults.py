"""The Kubernetes API misbehaving under the real daemon: expired watches, cut streams and a
whole outage across a deadline never cost a completion or repeat an alert."""

from __future__ import annotations

from datetime import timedelta

from monitor.testing.stack import LocalStack
from monitor.testing.wait import wait_until
from tests.e2e.helpers import (
    batch_status,
    deadline_batch,
    decided_after,
    duplicates,
    freshness_batch,
    keys,
    kinds,
    now,
    of_kind,
    outbox_empty,
    spawn_configured,
    until,
)

ROUNDS = 4


def job_lists(stack: LocalStack) -> int:
    """Job list requests the fake answered (a watch is verb `watch`)."""
    return sum(r.verb == "list" and r.resource == "jobs" for r in list(stack.kube.requests))


def test_expired_and_dropped_watches_miss_no_completion_and_repeat_nothing(
    stack: LocalStack,
) -> None:
    daemon, deadline = spawn_configured(
        stack,
        {},
        6,
        lambda deadline: [
            freshness_batch("worker", "1h"),
            deadline_batch("control", deadline),
            *(deadline_batch(f"ok-{index}", deadline) for index in range(ROUNDS)),
        ],
    )
    jobs, kube = stack.kube.jobs, stack.kube
    lists_before = job_lists(stack)
    failed = []
    for index in range(ROUNDS):
        jobs.create_job("ml", f"ok-{index}-1", cronjob=f"ok-{index}")
        kube.drop_watches()
        jobs.complete_job("ml", f"ok-{index}-1")
        kube.compact()  # the reconnecting watch's resourceVersion is gone: 410, relist
        job = jobs.create_job("ml", f"worker-{index}", cronjob="worker")
        jobs.fail_job("ml", f"worker-{index}")
        failed.append(f"job_failed:ml/worker-{index}@{job['metadata']['uid']}")
        kube.drop_watches()
        wait_until(lambda: kube.open_watches >= 1, timeout=10)
    # Compaction made reconnecting watches answer 410 Expired, and the daemon relisted.
    wait_until(lambda: job_lists(stack) > lists_before, timeout=5)

    assert now() < deadline - timedelta(seconds=1), "the chaos took too long to judge in time"
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    for index in range(ROUNDS):
        name = f"ok-{index}"
        wait_until(lambda name=name: decided_after(daemon, name, deadline), timeout=5)
        assert batch_status(daemon, name)["last_success"] is not None
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert keys(stack.slack, "job_failed") == failed
    assert keys(stack.slack, "missed_deadline") == [f"control@{deadline.isoformat()}"]
    assert daemon.terminate() == 0
    assert duplicates(stack.slack) == {}
    assert sorted(kinds(stack.slack)) == ["job_failed"] * ROUNDS + ["missed_deadline"]


def test_api_outage_across_a_deadline_met_during_the_outage_is_no_miss(
    stack: LocalStack,
) -> None:
    daemon, deadline = spawn_configured(
        stack,
        {"health": {"degraded_after": "2s"}},
        4,
        lambda deadline: [deadline_batch("done", deadline), deadline_batch("absent", deadline)],
    )
    stack.kube.jobs.create_job("ml", "done-1", cronjob="done")
    stack.kube.stop()
    # The Job completes while nobody can see it; the deadline passes during the outage.
    stack.kube.jobs.complete_job("ml", "done-1")
    wait_until(lambda: of_kind(stack.slack, "monitor_degraded"), timeout=10)
    [degraded] = of_kind(stack.slack, "monitor_degraded")
    assert degraded.payload["batch"] == ""
    assert degraded.payload["key"].startswith("degraded:kubernetes@")
    wait_until(lambda: now() >= deadline + timedelta(seconds=2), timeout=until(deadline))
    assert of_kind(stack.slack, "missed_deadline") == []  # judging waits for the cluster

    stack.kube.start()
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=40)
    assert keys(stack.slack, "missed_deadline") == [f"absent@{deadline.isoformat()}"]
    wait_until(lambda: decided_after(daemon, "done", deadline), timeout=5)
    assert batch_status(daemon, "done")["last_success"] is not None
    wait_until(lambda: of_kind(stack.slack, "recovered"), timeout=10)
    [recovered] = of_kind(stack.slack, "recovered")
    assert recovered.thread_ts == degraded.ts
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert daemon.terminate() == 0
    assert sorted(kinds(stack.slack)) == ["missed_deadline", "monitor_degraded", "recovered"]
