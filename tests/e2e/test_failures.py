"""Failures through the real daemon: Job failures with their reason, tracebacks from Cloud
Logging and from pod logs, hostile text escaped, and Spot preemption that is no alert."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from monitor.testing.kube_workloads import PODS
from monitor.testing.logging_api import container_entry
from monitor.testing.stack import LocalStack
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    batch_status,
    deadline_batch,
    decided_after,
    duplicates,
    everything_sent,
    freshness_batch,
    kinds,
    now,
    of_kind,
    outbox_empty,
    spawn_configured,
    until,
)

TRACEBACK = """\
Traceback (most recent call last):
  File "/app/pipeline/run.py", line 42, in <module>
    main()
  File "/app/pipeline/run.py", line 17, in main
    raise ValueError(message)
{final}"""


def by_key_part(messages: list[Any], part: str) -> Any:
    return next(m for m in messages if part in m.payload["key"])


def test_job_failures_are_posted_once_with_their_reason(stack: LocalStack) -> None:
    config = stack.write_config(
        {
            "batches": [freshness_batch("train", "1h")],
            "unmatched": {"notify": {"job_failed": True, "traceback": False}},
        }
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    jobs = stack.kube.jobs
    jobs.create_job("ml", "train-1", cronjob="train")
    jobs.create_job("ml", "train-2", cronjob="train")
    jobs.create_job("ml", "train-3", cronjob="train")
    jobs.create_job("ml", "stray-1")
    failed_at = time.monotonic()
    jobs.fail_job("ml", "train-1", reason="BackoffLimitExceeded")
    jobs.fail_job("ml", "train-2", reason="DeadlineExceeded")
    jobs.fail_job("ml", "stray-1", reason="BackoffLimitExceeded")
    # A Job removed right after failing (TTL): its DELETED event still carries the failure.
    jobs.fail_job("ml", "train-3", reason="PodFailurePolicy")
    jobs.delete_job("ml", "train-3")

    wait_until(lambda: len(of_kind(stack.slack, "job_failed")) == 4, timeout=5)
    posted = of_kind(stack.slack, "job_failed")
    assert max(m.arrived for m in posted) - failed_at <= timing_bound(2.0)
    expected = {
        "train-1": ("train", "BackoffLimitExceeded"),
        "train-2": ("train", "DeadlineExceeded"),
        "train-3": ("train", "PodFailurePolicy"),
        "stray-1": ("", "BackoffLimitExceeded"),
    }
    for job, (batch, reason) in expected.items():
        message = by_key_part(posted, f"ml/{job}@")
        assert message.payload["batch"] == batch
        assert reason in (message.text or ""), message.text
        assert job in (message.text or "")
    wait_until(lambda: batch_status(daemon, "train")["state"] == "failing", timeout=3)
    assert daemon.terminate() == 0
    assert duplicates(stack.slack) == {}
    assert kinds(stack.slack) == ["job_failed"] * 4


def test_traceback_from_cloud_logging_shows_the_final_line(logging_stack: LocalStack) -> None:
    stack = logging_stack
    assert stack.logging is not None
    config = stack.write_config(
        {
            "cloud_logging": {
                "project": "test-project",
                "cluster": "test-cluster",
                "poll_interval": "1s",
            },
            "batches": [freshness_batch("score", "1h")],
        }
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    stack.kube.jobs.create_job("ml", "score-1", cronjob="score")
    [pod] = stack.kube.jobs.pods_of("ml", "score-1")
    pod_name = pod["metadata"]["name"]
    start = now()
    lines = TRACEBACK.format(final="ValueError: no rows for 2026-11-27").splitlines()
    stack.logging.add(
        *(
            container_entry(
                namespace="ml",
                pod=pod_name,
                text=line,
                timestamp=start + timedelta(milliseconds=index),
                job="score-1",
                job_uid=pod["metadata"]["labels"]["controller-uid"],
            )
            for index, line in enumerate(lines)
        )
    )
    # The grouper waits a few seconds after the final line for a chained traceback.
    wait_until(lambda: of_kind(stack.slack, "traceback"), timeout=12)
    [alert] = of_kind(stack.slack, "traceback")
    assert alert.payload["batch"] == "score"
    assert alert.payload["key"].startswith(f"traceback:ml/{pod_name}/main@")
    assert "ValueError: no rows for 2026-11-27" in everything_sent(stack.slack)
    wait_until(lambda: batch_status(daemon, "score")["state"] == "failing", timeout=3)
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["traceback"]


def test_traceback_from_pod_logs_when_the_job_fails(stack: LocalStack) -> None:
    config = stack.write_config(
        {"kubernetes": {"pod_logs": True}, "batches": [freshness_batch("embed", "1h")]}
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    log = "loading shards\n" + TRACEBACK.format(final="KeyError: 'user_id'") + "\n"
    stack.kube.jobs.create_job("ml", "embed-1", cronjob="embed", logs={"main": log})
    stack.kube.jobs.fail_job("ml", "embed-1", reason="BackoffLimitExceeded")

    wait_until(lambda: of_kind(stack.slack, "traceback"), timeout=6)
    [traceback] = of_kind(stack.slack, "traceback")
    assert traceback.payload["batch"] == "embed"
    assert "KeyError: 'user_id'" in everything_sent(stack.slack)
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert daemon.terminate() == 0
    assert sorted(kinds(stack.slack)) == ["job_failed", "traceback"]


HOSTILE = ("<!channel>", "<!here>", "<@U123>", "<https://evil.example|click>")


def test_hostile_cluster_and_log_text_never_reaches_slack_unescaped(
    logging_stack: LocalStack,
) -> None:
    stack = logging_stack
    assert stack.logging is not None
    settings = {
        "cloud_logging": {
            "project": "test-project",
            "cluster": "test-cluster",
            "poll_interval": "1s",
            "endpoint": stack.logging.url,
        }
    }
    daemon, deadline = spawn_configured(
        stack,
        settings,
        4,
        lambda deadline: [
            {"name": "any", "match": {"namespace": "ml", "job_name": "^evil"}, "freshness": "1h"},
            deadline_batch("late", deadline),
        ],
    )
    jobs = stack.kube.jobs
    hostile = " ".join(HOSTILE) + " & friends"
    jobs.create_job("ml", "evil-<!channel>-<@U123>", labels={"team": "<!here>"})
    jobs.fail_job("ml", "evil-<!channel>-<@U123>", reason=hostile)
    jobs.create_job("ml", "evil-2")
    [pod] = jobs.pods_of("ml", "evil-2")
    start = now()
    lines = TRACEBACK.format(final=f"RuntimeError: {hostile}").splitlines()
    stack.logging.add(
        *(
            container_entry(
                namespace="ml",
                pod=pod["metadata"]["name"],
                text=line,
                timestamp=start + timedelta(milliseconds=index),
                job="evil-2",
                job_uid=pod["metadata"]["labels"]["controller-uid"],
            )
            for index, line in enumerate(lines)
        )
    )
    jobs.create_job("ml", "late-<!channel>", cronjob="late")
    wait_until(
        lambda: sorted(set(kinds(stack.slack))) == ["job_failed", "missed_deadline", "traceback"],
        timeout=until(deadline),
    )
    jobs.complete_job("ml", "late-<!channel>")
    wait_until(lambda: stack.slack.updates, timeout=5)
    sent = everything_sent(stack.slack)
    for ping in HOSTILE:
        assert ping not in sent, ping
    assert "&lt;!channel&gt;" in sent
    assert "&lt;@U123&gt;" in sent
    assert "&amp; friends" in sent
    assert daemon.terminate() == 0


def preempt_pod(stack: LocalStack, namespace: str, pod_name: str) -> None:
    """What GKE writes when a Spot VM goes away under a pod: Failed + DisruptionTarget."""

    def change(pod: dict[str, Any]) -> None:
        stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")
        pod["status"].update(
            {
                "phase": "Failed",
                "reason": "Terminated",
                "message": "Pod was terminated in response to imminent node shutdown.",
                "conditions": [
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "TerminationByKubelet",
                        "message": "Pod was terminated in response to imminent node shutdown.",
                        "lastTransitionTime": stamp,
                    }
                ],
            }
        )

    stack.kube.store.modify(PODS, namespace, pod_name, change)


def test_spot_preemption_retried_in_time_is_not_an_alert(stack: LocalStack) -> None:
    from monitor.testing.kube_workloads import JOBS, pod_object

    daemon, deadline = spawn_configured(
        stack,
        {"kubernetes": {"pod_logs": True}},
        4,
        lambda deadline: [deadline_batch("spot", deadline), deadline_batch("control", deadline)],
    )
    jobs = stack.kube.jobs
    job = jobs.create_job("ml", "spot-1", cronjob="spot", logs={"main": "epoch 1/3\n"})
    [first] = jobs.pods_of("ml", "spot-1")
    preempt_pod(stack, "ml", first["metadata"]["name"])

    def retrying(obj: dict[str, Any]) -> None:
        obj["status"].update({"failed": 1, "active": 1})

    stack.kube.store.modify(JOBS, "ml", "spot-1", retrying)
    stack.kube.store.create(PODS, "ml", pod_object(job, 0))
    jobs.complete_job("ml", "spot-1")

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    wait_until(lambda: decided_after(daemon, "spot", deadline), timeout=5)
    wait_until(lambda: outbox_empty(daemon), timeout=5)
    assert [m.payload["batch"] for m in stack.slack.messages] == ["control"]
    status = batch_status(daemon, "spot")
    assert status["state"] == "ok", status
    assert status["last_success"] is not None
    assert daemon.terminate() == 0
