"""Cloud Logging's Job events as a second witness, through the real daemon and `backtest`:
a Job that completed and was deleted while the daemon was down is no false miss after the
restart, a Job told by both witnesses counts once, and backtest reaches back through events."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.core.rfc3339 import parse_rfc3339
from monitor.testing.logging_api import job_event_entry
from monitor.testing.stack import LocalStack, seconds_ahead
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import batch_status, deadline_batch, decided_after, keys, now, of_kind

CLOUD_LOGGING = {"project": "test-project", "cluster": "test-cluster", "poll_interval": "1s"}


def completed_and_deleted(stack: LocalStack, name: str, cronjob: str) -> tuple[str, datetime]:
    """A Job of `cronjob` that completes now and is deleted at once (a TTL of 0)."""
    jobs = stack.kube.jobs
    jobs.create_job("ml", name, cronjob=cronjob, start_time=now() - timedelta(seconds=30))
    jobs.complete_job("ml", name)
    job: dict[str, Any] = stack.kube.get("batch", "jobs", "ml", name)
    jobs.delete_job("ml", name)
    return job["metadata"]["uid"], parse_rfc3339(job["status"]["completionTime"])


def test_a_job_deleted_while_the_daemon_was_down_is_witnessed_by_its_event(
    logging_stack: LocalStack,
) -> None:
    stack = logging_stack
    assert stack.logging is not None
    deadline = seconds_ahead(12)
    config = stack.write_config(
        {
            "cloud_logging": dict(CLOUD_LOGGING),
            "batches": [deadline_batch("nightly", deadline), deadline_batch("control", deadline)],
        }
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    assert daemon.terminate() == 0  # a rollout: the daemon is down from here

    uid, completed = completed_and_deleted(stack, "nightly-29400000", "nightly")
    stack.logging.add(
        job_event_entry(
            namespace="ml", job="nightly-29400000", uid=uid, reason="Completed", at=completed
        )
    )
    wait_until(lambda: now() > deadline + timedelta(seconds=1), timeout=30)

    restarted = stack.spawn(config, name="restarted")
    restarted.wait_ready()
    wait_until(lambda: keys(stack.slack, "missed_deadline"), timeout=timing_bound(30))
    wait_until(lambda: decided_after(restarted, "nightly", deadline), timeout=timing_bound(10))
    [miss] = of_kind(stack.slack, "missed_deadline")
    assert miss.payload["batch"] == "control"  # no completion anywhere: alerted once
    assert batch_status(restarted, "nightly")["state"] == "ok"  # the event witnessed it
    assert "judging the deadlines that passed while down with what is known" not in (
        restarted.logs()
    )
    assert restarted.terminate() == 0
    assert [m.payload["batch"] for m in of_kind(stack.slack, "missed_deadline")] == ["control"]


def test_a_job_told_by_both_witnesses_counts_once(logging_stack: LocalStack) -> None:
    stack = logging_stack
    assert stack.logging is not None
    config = stack.write_config(
        {
            "cloud_logging": dict(CLOUD_LOGGING),
            "batches": [deadline_batch("train", seconds_ahead(3600))],
            "unmatched": {"notify": {"job_failed": False, "traceback": False}},
        }
    )
    daemon = stack.spawn(config)
    daemon.wait_ready()
    jobs = stack.kube.jobs
    jobs.create_job(
        "ml", "train-29400001", cronjob="train", start_time=now() - timedelta(seconds=60)
    )
    jobs.complete_job("ml", "train-29400001")
    jobs.create_job("ml", "train-29400002", cronjob="train", start_time=now())
    jobs.fail_job("ml", "train-29400002")
    for name, reason in (
        ("train-29400001", "Completed"),
        ("train-29400002", "BackoffLimitExceeded"),
    ):
        job = stack.kube.get("batch", "jobs", "ml", name)
        stack.logging.add(
            job_event_entry(
                namespace="ml", job=name, uid=job["metadata"]["uid"], reason=reason, at=now()
            )
        )
    events_read = len(stack.logging.requests) + 4  # a few polls after the events were added
    wait_until(lambda: len(stack.logging.requests) >= events_read, timeout=timing_bound(15))
    wait_until(lambda: keys(stack.slack, "job_failed"), timeout=timing_bound(5))
    assert len(keys(stack.slack, "job_failed")) == 1
    runs = batch_status(daemon, "train")["runs"]
    assert [run["outcome"] for run in runs] == ["failed", "succeeded"]
    assert runs[1]["duration_seconds"] is not None  # the API's start kept, not the event's none


def test_backtest_reaches_back_through_events_alone(logging_stack: LocalStack) -> None:
    stack = logging_stack
    assert stack.logging is not None
    hour = timedelta(hours=1)
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    config = stack.write_config(
        {
            "cloud_logging": {**CLOUD_LOGGING, "endpoint": stack.logging.url},
            "batches": [
                {"name": "hourly", "match": {"namespace": "ml", "cronjob": "hourly"},
                 "deadline": "0 * * * *"},
                {"name": "tagged", "match": {"namespace": "ml", "labels": {"team": "a"}},
                 "deadline": "0 * * * *"},
            ],
        }
    )  # fmt: skip
    # No Job is listed any more: the last 4 hours exist only as events; the run for the
    # deadline 2 hours ago never happened.
    for back in (4, 3, 1, 0):
        done = top - back * hour - timedelta(minutes=10)
        stack.logging.add(
            job_event_entry(namespace="ml", job=f"hourly-{29400000 + back}", uid=f"u{back}",
                            reason="Completed", at=done)
        )  # fmt: skip
    since = int((datetime.now(UTC) - (top - 4 * hour - hour / 2)).total_seconds())
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "backtest", "--config", str(config), "--since",
         f"{since}s"],
        env=stack.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    missed = [line for line in lines if " missed_deadline hourly " in line]
    assert len(missed) == 1
    missed_at = datetime.fromisoformat(missed[0].split()[0])
    assert missed_at == top - 2 * hour
    assert "hourly: 5 deadlines, 4 met, 1 missed, on time 80%" in lines
    assert "tagged: 5 deadlines, 0 met, 5 missed, on time 0%" in lines  # labels: no events
