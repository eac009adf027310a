"""Sources through the real daemon: Argo Workflow batches, deadlines judged while the
cluster churns, a hostile Job name against a catastrophic pattern, pod-log tracebacks
read as soon as the container ends."""

from __future__ import annotations

import time
from typing import Any

from monitor.testing.stack import LocalStack, cron_at
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    decided_after,
    duplicates,
    freshness_batch,
    keys,
    kinds,
    of_kind,
    received_at,
    spawn_configured,
    until,
)

TRACEBACK = """Traceback (most recent call last):
  File "/app/embed.py", line 9, in <module>
    shard = shards[index]
IndexError: list index out of range
"""


def workflow_batch(name: str, family: str, deadline: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"namespace": "ml", "workflow": family},
        "deadline": cron_at(deadline),
    }


def test_a_workflow_batch_is_missed_failed_and_recovered(stack: LocalStack) -> None:
    daemon, deadline = spawn_configured(
        stack,
        {"argo": {"enabled": True}},
        4,
        lambda at: [
            workflow_batch("train", "train", at),
            workflow_batch("score", "score-template", at),
        ],
    )
    flows = stack.kube.workflows
    # "score" runs from a WorkflowTemplate and succeeds in time: silence.
    flows.submit("ml", "score-x1", template="score-template")
    flows.finish("ml", "score-x1", "Succeeded")
    # "train" (a CronWorkflow) fails, then does not succeed before the deadline.
    flows.submit("ml", "train-1700", cron_workflow="train")
    flows.finish("ml", "train-1700", "Failed", message="child 'train-1700-main' failed")
    wait_until(lambda: of_kind(stack.slack, "job_failed"), timeout=5)
    [failed] = of_kind(stack.slack, "job_failed")
    assert failed.payload["batch"] == "train"
    assert "Workflow failed: ml/train-1700 (Failed)" in (failed.text or "")

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    [missed] = of_kind(stack.slack, "missed_deadline")
    assert missed.payload == {
        "kind": "missed_deadline",
        "batch": "train",
        "key": f"train@{deadline.isoformat()}",
    }
    assert received_at(missed) - deadline.timestamp() <= timing_bound(2.0)
    wait_until(lambda: decided_after(daemon, "score", deadline), timeout=5)

    flows.submit("ml", "train-1701", cron_workflow="train")
    flows.finish("ml", "train-1701", "Succeeded")
    wait_until(lambda: of_kind(stack.slack, "recovered"), timeout=5)
    [recovered] = of_kind(stack.slack, "recovered")
    assert recovered.thread_ts == missed.ts
    assert daemon.terminate() == 0
    assert sorted(kinds(stack.slack)) == ["job_failed", "missed_deadline", "recovered"]
    assert not [key for key in keys(stack.slack) if "score" in key]
    assert duplicates(stack.slack) == {}


def test_a_deadline_is_judged_within_three_seconds_while_200_updates_per_second_stream(
    stack: LocalStack,
) -> None:
    """No quiet moment on the watch: the watermark must advance by progress."""
    with stack.kube.jobs.churn(200) as writes:
        daemon, deadline = spawn_configured(
            stack,
            {},
            4,
            lambda at: [
                {
                    "name": "late",
                    "match": {"namespace": "ml", "cronjob": "late"},
                    "deadline": cron_at(at),
                },
                {
                    "name": "done",
                    "match": {"namespace": "ml", "cronjob": "done"},
                    "deadline": cron_at(at),
                },
            ],
        )
        stack.kube.jobs.create_job("ml", "done-1", cronjob="done")
        stack.kube.jobs.complete_job("ml", "done-1")
        wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
        [missed] = of_kind(stack.slack, "missed_deadline")
        assert received_at(missed) - deadline.timestamp() <= timing_bound(3.0)
        wait_until(lambda: decided_after(daemon, "done", deadline), timeout=5)
        assert writes[0] > 200 * 3  # the churn really ran through the decision
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["missed_deadline"]
    assert missed.payload["batch"] == "late"


def test_a_catastrophic_pattern_and_a_hostile_name_cannot_freeze_the_daemon(
    stack: LocalStack,
) -> None:
    """With a backtracking engine this pattern against this name runs for hours, holding
    the interpreter lock; /healthz must keep answering and a due deadline be alerted."""
    daemon, deadline = spawn_configured(
        stack,
        {"unmatched": {"notify": {"job_failed": True}}},
        4,
        lambda at: [
            {
                "name": "daily",
                "match": {"job_name": "^([a-z0-9]+-?)+-daily$"},
                "deadline": cron_at(at),
            }
        ],
    )
    hostile = "a" * 30 + "-" + "b" * 30 + "!"
    stack.kube.jobs.create_job("ml", hostile[:63])
    stack.kube.jobs.fail_job("ml", hostile[:63])
    worst = 0.0
    for _ in range(20):
        started = time.monotonic()
        assert daemon.get("/healthz")[0] == 200
        worst = max(worst, time.monotonic() - started)
    wait_until(lambda: of_kind(stack.slack, "job_failed"), timeout=5)
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    assert worst < timing_bound(0.1), f"/healthz took {worst * 1000:.0f} ms"
    assert daemon.terminate() == 0


def test_a_pod_that_fails_while_its_job_retries_has_its_traceback_alerted_at_once(
    stack: LocalStack,
) -> None:
    """With pod logs, a traceback is alerted within 3 s of its container terminating,
    not when the Job finally ends."""
    config = stack.write_config(
        {"kubernetes": {"pod_logs": True}, "batches": [freshness_batch("embed", "1h")]}
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    jobs = stack.kube.jobs
    jobs.create_job("ml", "embed-1", cronjob="embed", logs={"main": "loading shards\n"})
    [pod] = jobs.pods_of("ml", "embed-1")
    failed_at = time.monotonic()
    jobs.fail_pod("ml", pod["metadata"]["name"], log={"main": TRACEBACK})
    wait_until(lambda: of_kind(stack.slack, "traceback"), timeout=6)
    [alert] = of_kind(stack.slack, "traceback")
    assert alert.arrived - failed_at <= timing_bound(3.0)
    assert alert.payload["batch"] == "embed"
    assert alert.payload["key"].startswith(f"traceback:ml/{pod['metadata']['name']}/main@")
    job = stack.kube.get("batch", "jobs", "ml", "embed-1")
    assert "completionTime" not in job["status"]  # the Job is still retrying
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["traceback"]  # no job_failed: the Job has not failed
