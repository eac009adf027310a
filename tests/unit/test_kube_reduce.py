"""Raw Job JSON -> JobSeen: outcomes from conditions, the early instant, malformed input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.sources.kube.reduce import MalformedRun, reduce_job, reduce_raw
from monitor.testing.kube_workloads import job_object

T0 = datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC)


def _condition(kind: str, at: str, reason: str = "CompletionsReached") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": "m",
        "lastTransitionTime": at,
    }


BASE = job_object("ml-batch", "daily-1", cronjob="daily", labels={"app": "rec"}, start_time=T0)


def _job(**status: Any) -> dict[str, Any]:
    job = copy.deepcopy(BASE)
    job["status"].update(status)
    return job


def test_a_running_job_has_its_identity_and_owner() -> None:
    seen = reduce_job(_job())
    assert (seen.namespace, seen.name, seen.cronjob, seen.outcome) == (
        "ml-batch",
        "daily-1",
        "daily",
        "running",
    )
    assert seen.labels["app"] == "rec"
    assert seen.start_time == T0


def test_runs_share_one_copy_of_their_repeated_label_texts_and_keep_their_values() -> None:
    seen = [
        reduce_raw(json.dumps(job_object("ml-batch", f"daily-{n}", cronjob="daily",
                                         labels={"app": "rec", "team": "ranking-long-name"},
                                         start_time=T0)).encode())
        for n in (1, 2)
    ]  # fmt: skip
    first, second = seen
    for run in seen:
        labels = dict(run.labels)
        assert labels["app"] == "rec"
        assert labels["team"] == "ranking-long-name"
        assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == run.uid
        assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == run.name
        assert labels["controller-uid"] is run.uid  # the run's own string, not a copy
        assert labels["job-name"] is run.name
    assert first.uid != second.uid
    assert first.labels["team"] is second.labels["team"]
    for key_one, key_two in zip(first.labels, second.labels, strict=True):
        assert key_one is key_two
    assert first.cronjob is second.cronjob
    assert first.namespace is second.namespace


def test_success_criteria_met_decides_before_complete() -> None:
    early = reduce_job(_job(conditions=[_condition("SuccessCriteriaMet", "2026-11-27T00:05:00Z")]))
    final = reduce_job(
        _job(
            completionTime="2026-11-27T00:05:03Z",
            conditions=[
                _condition("SuccessCriteriaMet", "2026-11-27T00:05:00Z"),
                _condition("Complete", "2026-11-27T00:05:03Z"),
            ],
        )
    )
    assert early.outcome == final.outcome == "succeeded"
    assert (
        early.completion_time == final.completion_time == datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
    )


def test_a_pre_1_31_complete_uses_completion_time() -> None:
    seen = reduce_job(
        _job(
            completionTime="2026-11-27T00:05:03Z",
            conditions=[_condition("Complete", "2026-11-27T00:05:04Z")],
        )
    )
    assert seen.completion_time == datetime(2026, 11, 27, 0, 5, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "reason",
    ["BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy", "MaxFailedIndexesExceeded"],
)
def test_failure_target_then_failed_is_one_failure_with_its_reason(reason: str) -> None:
    early = reduce_job(
        _job(conditions=[_condition("FailureTarget", "2026-11-27T00:05:00Z", reason)])
    )
    final = reduce_job(
        _job(
            conditions=[
                _condition("FailureTarget", "2026-11-27T00:05:00Z", reason),
                _condition("Failed", "2026-11-27T00:05:02Z", reason),
            ]
        )
    )
    assert early == final
    assert final.outcome == "failed"
    assert final.reason == reason
    assert final.failed_at == datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
    assert final.completion_time is None


def test_false_conditions_and_others_do_not_decide() -> None:
    seen = reduce_job(
        _job(
            conditions=[
                {**_condition("Complete", "2026-11-27T00:05:00Z"), "status": "False"},
                _condition("Suspended", "2026-11-27T00:04:00Z"),
            ]
        )
    )
    assert seen.outcome == "running"


@pytest.mark.parametrize(
    "broken",
    [
        {"metadata": {"name": "x", "namespace": "n"}},  # no uid
        {"metadata": "nope"},
        {"metadata": {"name": "x", "namespace": "n", "uid": "u"}, "status": {"conditions": "bad"}},
        {
            "metadata": {"name": "x", "namespace": "n", "uid": "u"},
            "status": {"startTime": "yesterday"},
        },
        {"metadata": {"name": "x", "namespace": "n", "uid": "u", "labels": {"a": 1}}},
        {"metadata": {"name": "x", "namespace": "n", "uid": "u", "ownerReferences": {}}},
        {
            "metadata": {"name": "x", "namespace": "n", "uid": "u"},
            "status": {"completionTime": "2026-11-27T00:00:00"},
        },
        [],
        None,
    ],
)
def test_malformed_jobs_raise_a_clear_error(broken: Any) -> None:
    with pytest.raises(MalformedRun):
        reduce_job(broken)
