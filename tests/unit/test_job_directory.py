"""The Job directory: log facts get their Job's owner and labels, unless the pod's claim
is contradicted by the Job's uid."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.core.facts import JobSeen, TracebackSeen
from monitor.runtime.job_directory import JobDirectory

AT = datetime(2026, 11, 27, 9, tzinfo=UTC)


def job(name: str, uid: str, **extra: object) -> JobSeen:
    return JobSeen(uid=uid, namespace="ml", name=name, **extra)  # type: ignore[arg-type]


def traceback(job: str | None, job_uid: str | None, pod: str = "p") -> TracebackSeen:
    return TracebackSeen("ml", pod, "main", job, AT, "Traceback", "E: x", job_uid=job_uid)


def test_a_pod_of_a_known_job_gets_its_owner_and_labels() -> None:
    directory = JobDirectory()
    directory.seen(job("daily-1", "u1", cronjob="daily", labels={"team": "ml"}))
    fact = directory.attribute(traceback("daily-1", "u1"))
    assert (fact.job, fact.cronjob, dict(fact.labels)) == ("daily-1", "daily", {"team": "ml"})


def test_a_pod_whose_uid_contradicts_the_job_is_unmatched() -> None:
    directory = JobDirectory()
    directory.seen(job("daily-1", "u1", cronjob="daily"))
    fact = directory.attribute(traceback("daily-1", "forged"))
    assert (fact.job, fact.job_uid, fact.cronjob) == (None, None, None)


def test_an_unknown_job_keeps_the_pods_claim_and_workflows_are_not_filed() -> None:
    directory = JobDirectory()
    directory.seen(job("train-1", "w1", kind="Workflow"))
    assert len(directory) == 0
    fact = directory.attribute(traceback("train-1", "u9"))
    assert (fact.job, fact.cronjob) == ("train-1", None)


def test_pod_names_resolve_to_known_jobs_and_the_directory_is_bounded() -> None:
    directory = JobDirectory(limit=2)
    for index in range(3):
        directory.seen(job(f"daily-{index}", f"u{index}"))
    assert len(directory) == 2
    assert directory.job_for_pod("ml", "daily-2-abcde") == "daily-2"
    assert directory.job_for_pod("ml", "daily-2-0-abcde") == "daily-2"  # indexed Job
    assert directory.job_for_pod("ml", "daily-0-abcde") is None  # evicted, oldest first
    assert directory.job_for_pod("other", "daily-2-abcde") is None
