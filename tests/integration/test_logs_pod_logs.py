"""The pod-logs source (a watch of Job pods) through the real kubernetes client against the
fake API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.core.facts import Fact, TracebackSeen
from monitor.sources.kube.reflector import ReflectorSettings
from monitor.sources.logs.pods import PodLogSource
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.wait import wait_until

NAMESPACE = "ml-batch"
CHAINED = """starting job
Traceback (most recent call last):
  File "/app/load.py", line 12, in fetch
    return rows[0]
IndexError: list index out of range

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/load.py", line 20, in <module>
    fetch()
LookupError: no rows for 2026-11-27
exiting with status 1"""
SECOND = """Traceback (most recent call last):
  File "/app/retry.py", line 3, in <module>
    connect()
ConnectionError: database unreachable"""


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


SourceFactory = Callable[..., PodLogSource]


@pytest.fixture
def make_source(kube: FakeKubeApi) -> Iterator[SourceFactory]:
    """Start a pod-log source on `kube` and wait until it has listed; stopped at teardown."""
    started: list[PodLogSource] = []

    def make(
        facts: list[Fact], namespaces: list[str] | None = None, **options: Any
    ) -> PodLogSource:
        settings = ReflectorSettings(silence_timeout=2.0, backoff_initial=0.05, backoff_max=0.3)
        source = PodLogSource(
            kube.api_client(),
            [NAMESPACE] if namespaces is None else namespaces,
            facts.append,
            settings=settings,
            **options,
        ).start()
        started.append(source)
        wait_until(lambda: source.synced and kube.open_watches >= 1)
        return source

    yield make
    for source in started:
        source.stop()


def tracebacks(facts: list[Fact]) -> list[TracebackSeen]:
    return [fact for fact in facts if isinstance(fact, TracebackSeen)]


def run_job(kube: FakeKubeApi, name: str, logs: dict[str, str], start: datetime) -> str:
    containers = tuple(logs)
    kube.jobs.create_job(NAMESPACE, name, containers=containers)
    [pod] = kube.jobs.pods_of(NAMESPACE, name)
    pod_name: str = pod["metadata"]["name"]
    for container, text in logs.items():
        kube.jobs.set_pod_log(NAMESPACE, pod_name, container, text, start=start)
    return pod_name


def log_reads(kube: FakeKubeApi) -> int:
    return len([r for r in kube.requests if r.subresource == "log"])


def test_a_terminated_pod_log_gives_one_fact_per_traceback_read_once(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    facts: list[Fact] = []
    source = make_source(facts)
    start = datetime.now(UTC) - timedelta(seconds=30)
    pod = run_job(kube, "load-1", {"main": CHAINED, "sidecar": SECOND}, start)
    job_uid = kube.get("batch", "jobs", NAMESPACE, "load-1")["metadata"]["uid"]
    kube.jobs.fail_job(NAMESPACE, "load-1")
    wait_until(lambda: len(tracebacks(facts)) == 2)
    found = {(f.container, f.final_line, f.time, f.job, f.pod) for f in tracebacks(facts)}
    assert found == {
        ("main", "LookupError: no rows for 2026-11-27", start + timedelta(milliseconds=1),
         "load-1", pod),
        ("sidecar", "ConnectionError: database unreachable", start, "load-1", pod),
    }  # fmt: skip
    assert {f.job_uid for f in tracebacks(facts)} == {job_uid}
    # Later changes of the same pod (and its deletion) read nothing again.
    kube.jobs.delete_job(NAMESPACE, "load-1")
    wait_until(lambda: source.idle)
    assert log_reads(kube) == 2
    assert len(tracebacks(facts)) == 2


def test_a_pod_that_fails_while_its_job_retries_is_read_at_once(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    facts: list[Fact] = []
    make_source(facts)
    pod = run_job(kube, "retrying-1", {"main": "starting"}, datetime.now(UTC))
    kube.jobs.fail_pod(NAMESPACE, pod, log={"main": SECOND})
    wait_until(lambda: tracebacks(facts), timeout=3)
    [seen] = tracebacks(facts)
    assert (seen.pod, seen.job) == (pod, "retrying-1")
    job = kube.get("batch", "jobs", NAMESPACE, "retrying-1")
    assert "completionTime" not in job["status"]  # the Job itself is still running


def test_pods_finished_before_first_start_are_not_alerted(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    run_job(kube, "old", {"main": SECOND}, datetime.now(UTC) - timedelta(hours=2))
    kube.jobs.fail_job(NAMESPACE, "old", at=datetime.now(UTC) - timedelta(hours=1))
    facts: list[Fact] = []
    source = make_source(facts)
    run_job(kube, "new", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "new")
    wait_until(lambda: tracebacks(facts))
    wait_until(lambda: source.idle)
    assert [f.job for f in tracebacks(facts)] == ["new"]
    assert log_reads(kube) == 1


def test_a_container_that_ended_after_the_first_start_is_read_even_from_the_first_list(
    kube: FakeKubeApi,
) -> None:
    """The daemon starts, the pod fails, and only then does the first list arrive: that
    container ended after the start, so its traceback is news, not history."""
    facts: list[Fact] = []
    source = PodLogSource(kube.api_client(), [NAMESPACE], facts.append)  # not started yet
    run_job(kube, "early", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "early")
    source.start()
    try:
        wait_until(lambda: tracebacks(facts))
        assert [f.job for f in tracebacks(facts)] == ["early"]
    finally:
        source.stop()


def test_restart_with_cursor_reads_only_what_ended_meanwhile(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    facts: list[Fact] = []
    source = make_source(facts)
    run_job(kube, "first", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "first")
    wait_until(lambda: tracebacks(facts))
    wait_until(lambda: source.idle)
    source.stop()
    run_job(kube, "second", {"main": CHAINED}, datetime.now(UTC))
    kube.jobs.complete_job(NAMESPACE, "second")  # ended while the source was down
    make_source(facts, cursor=source.cursor())
    wait_until(lambda: len(tracebacks(facts)) == 2)
    assert [f.job for f in tracebacks(facts)] == ["first", "second"]


def test_a_cursor_from_the_polling_version_is_understood(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    pod = run_job(kube, "seen", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "seen")
    uid = kube.get("", "pods", NAMESPACE, pod)["metadata"]["uid"]
    facts: list[Fact] = []
    old_cursor = {"version": 1, "scanned": {uid: "2026-11-27T00:00:00.000000Z"}}
    source = make_source(facts, cursor=old_cursor)
    run_job(kube, "unseen", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "unseen")
    wait_until(lambda: tracebacks(facts))
    wait_until(lambda: source.idle)
    assert [f.job for f in tracebacks(facts)] == ["unseen"]


def test_log_reads_are_bounded(kube: FakeKubeApi, make_source: SourceFactory) -> None:
    facts: list[Fact] = []
    source = make_source(facts, namespaces=[], max_bytes=4096)
    noise = "x" * 1_000_000
    run_job(kube, "noisy", {"main": f"{noise}\n{SECOND}\n{noise}"}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "noisy")
    run_job(kube, "quiet", {"main": f"{SECOND}\n{noise}"}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "quiet")
    wait_until(lambda: log_reads(kube) == 2 and source.idle)
    assert [f.job for f in tracebacks(facts)] == ["quiet"]  # the other lies past the budget


def test_a_bare_pod_wearing_a_job_label_speaks_for_no_job(
    kube: FakeKubeApi, make_source: SourceFactory
) -> None:
    facts: list[Fact] = []
    make_source(facts)
    run_job(kube, "real-1", {"main": "ok"}, datetime.now(UTC))
    [real] = kube.jobs.pods_of(NAMESPACE, "real-1")
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "impostor",
            "namespace": NAMESPACE,
            "labels": {"batch.kubernetes.io/job-name": "real-1"},
        },
        "spec": real["spec"],
        "status": {**real["status"], "phase": "Running"},
    }
    kube.create("", "pods", NAMESPACE, bare)
    kube.jobs.fail_pod(NAMESPACE, "impostor", log={"main": SECOND})
    wait_until(lambda: tracebacks(facts))
    [seen] = tracebacks(facts)
    assert (seen.pod, seen.job, seen.job_uid) == ("impostor", None, None)
