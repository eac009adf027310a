"""The pod-logs fallback through the real kubernetes client against the fake API server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.facts import Fact, TracebackSeen
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


def test_finished_pod_log_gives_one_fact_per_traceback(kube: FakeKubeApi) -> None:
    facts: list[Fact] = []
    source = PodLogSource(kube.api_client(), [NAMESPACE], facts.append)
    source.poll_once()  # first start: nothing finished yet
    start = datetime.now(UTC) - timedelta(seconds=30)
    pod = run_job(kube, "load-1", {"main": CHAINED, "sidecar": SECOND}, start)
    source.poll_once()
    assert tracebacks(facts) == []  # still running: nothing read yet
    kube.jobs.fail_job(NAMESPACE, "load-1")
    source.poll_once()
    found = {(f.container, f.final_line, f.time, f.job, f.pod) for f in tracebacks(facts)}
    assert found == {
        ("main", "LookupError: no rows for 2026-11-27", start + timedelta(milliseconds=1),
         "load-1", pod),
        ("sidecar", "ConnectionError: database unreachable", start, "load-1", pod),
    }  # fmt: skip
    source.poll_once()
    assert len(tracebacks(facts)) == 2  # each pod is read once
    log_reads = [r for r in kube.requests if r.subresource == "log"]
    assert len(log_reads) == 2


def test_pods_finished_before_first_start_are_not_alerted(kube: FakeKubeApi) -> None:
    run_job(kube, "old", {"main": SECOND}, datetime.now(UTC) - timedelta(hours=2))
    kube.jobs.fail_job(NAMESPACE, "old")
    facts: list[Fact] = []
    source = PodLogSource(kube.api_client(), [NAMESPACE], facts.append)
    source.poll_once()
    assert tracebacks(facts) == []


def test_restart_with_cursor_does_not_rescan(kube: FakeKubeApi) -> None:
    facts: list[Fact] = []
    source = PodLogSource(kube.api_client(), [NAMESPACE], facts.append)
    source.poll_once()
    run_job(kube, "first", {"main": SECOND}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "first")
    source.poll_once()
    restarted = PodLogSource(kube.api_client(), [NAMESPACE], facts.append, cursor=source.cursor())
    run_job(kube, "second", {"main": CHAINED}, datetime.now(UTC))
    kube.jobs.complete_job(NAMESPACE, "second")
    restarted.poll_once()
    assert [f.job for f in tracebacks(facts)] == ["first", "second"]


def test_log_reads_are_bounded(kube: FakeKubeApi) -> None:
    facts: list[Fact] = []
    source = PodLogSource(kube.api_client(), [], facts.append, max_bytes=4096)
    source.poll_once()
    noise = "x" * 1_000_000
    run_job(kube, "noisy", {"main": f"{noise}\n{SECOND}\n{noise}"}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "noisy")
    source.poll_once()
    assert tracebacks(facts) == []  # the traceback lies past the byte budget
    run_job(kube, "quiet", {"main": f"{SECOND}\n{noise}"}, datetime.now(UTC))
    kube.jobs.fail_job(NAMESPACE, "quiet")
    source.poll_once()
    assert [f.job for f in tracebacks(facts)] == ["quiet"]  # inside the budget: found


def test_runs_on_its_own_thread(kube: FakeKubeApi) -> None:
    facts: list[Fact] = []
    source = PodLogSource(
        kube.api_client(), [NAMESPACE], facts.append, poll_interval=timedelta(milliseconds=50)
    )
    source.start()
    try:
        wait_until(lambda: any(r.resource == "pods" for r in kube.requests))
        run_job(kube, "threaded", {"main": SECOND}, datetime.now(UTC))
        kube.jobs.fail_job(NAMESPACE, "threaded")
        wait_until(lambda: len(tracebacks(facts)) == 1)
    finally:
        source.stop()
