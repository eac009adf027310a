# ruff: noqa: F811  (pytest fixtures imported from kube_support are used as parameters)
"""The Kubernetes Job source against the fake API server, through the real client."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from monitor.core.facts import JobGone, JobSeen, Watermark
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.wait import wait_until
from tests.integration.kube_support import (  # noqa: F401 (fixtures)
    Recorder,
    SourceFactory,
    kube,
    make_source,
    recorder,
    requests_of,
)


def test_initial_sync_is_a_paged_list_of_every_job(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    for index in range(25):
        kube.jobs.create_job("ml-batch", f"daily-{index}", cronjob="daily", labels={"app": "x"})
    source = make_source(page_size=10)
    wait_until(lambda: source.synced)
    seen = {job.name: job for job in recorder.seen()}
    assert len(seen) == 25
    assert seen["daily-3"].cronjob == "daily"
    assert seen["daily-3"].labels["app"] == "x"
    assert seen["daily-3"].outcome == "running"
    assert len(requests_of(kube, "list")) == 3


def test_a_completion_is_one_success_at_the_early_condition_time(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1", cronjob="daily")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    finished = datetime(2026, 11, 27, 0, 0, 7, tzinfo=UTC)
    kube.jobs.complete_job("ml-batch", "daily-1", at=finished)
    kube.jobs.create_job("ml-batch", "marker")
    wait_until(lambda: recorder.seen("marker"))
    successes = [s for s in recorder.seen("daily-1") if s.outcome == "succeeded"]
    assert len(successes) == 1  # SuccessCriteriaMet, then Complete: one outcome
    assert successes[0].completion_time == finished


def test_a_failure_carries_its_reason(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    kube.jobs.fail_job("ml-batch", "daily-1", reason="DeadlineExceeded")
    wait_until(lambda: "failed" in recorder.outcomes("daily-1"))
    failure = next(s for s in recorder.seen("daily-1") if s.outcome == "failed")
    assert failure.reason == "DeadlineExceeded"
    assert failure.failed_at is not None


def test_a_dropped_watch_resumes_without_relisting(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    assert kube.drop_watches() == 1
    kube.jobs.complete_job("ml-batch", "daily-1")
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"))
    assert len(requests_of(kube, "list")) == 1
    assert len(requests_of(kube, "watch")) >= 2


def test_bookmarks_keep_the_resume_point_fresh(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    """Changes elsewhere move only bookmarks; resuming after compaction must not 410."""
    kube.jobs.create_job("watched", "a-1")
    source = make_source(namespaces=["watched"])
    wait_until(lambda: source.synced and kube.open_watches == 1)
    for index in range(5):
        kube.jobs.create_job("elsewhere", f"b-{index}")
    current = kube.store.resource_version
    bookmarks_before = len(requests_of(kube, "watch"))
    wait_until(lambda: int(source.resource_versions["jobs/watched"]) >= current)
    kube.compact()
    kube.drop_watches()
    wait_until(lambda: len(requests_of(kube, "watch")) > bookmarks_before)
    kube.jobs.complete_job("watched", "a-1")
    wait_until(lambda: "succeeded" in recorder.outcomes("a-1"))
    assert len(requests_of(kube, "list")) == 1
    assert not [s for s in recorder.seen() if s.namespace == "elsewhere"]


@pytest.mark.parametrize("on_request", [False, True], ids=["in-stream", "on-request"])
def test_410_relists_and_diffs_what_changed_during_the_gap(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory, on_request: bool
) -> None:
    kube.expire_on_request(on_request)
    for name in ("stays", "completes", "completes-and-goes", "goes"):
        kube.jobs.create_job("ml-batch", name)
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    kube.stop()
    kube.jobs.complete_job("ml-batch", "completes")
    kube.jobs.complete_job("ml-batch", "completes-and-goes")
    kube.jobs.delete_job("ml-batch", "completes-and-goes")
    kube.jobs.delete_job("ml-batch", "goes")
    kube.jobs.create_job("ml-batch", "born-and-gone")
    kube.jobs.delete_job("ml-batch", "born-and-gone")
    kube.jobs.create_job("ml-batch", "new")
    kube.compact()
    kube.start()
    wait_until(lambda: len(requests_of(kube, "list")) == 2 and recorder.seen("new"))
    wait_until(lambda: set(recorder.gone()) == {"completes-and-goes", "goes"})
    assert recorder.outcomes("completes") == ["running", "succeeded"]
    # Never visible as completed: nothing is invented, it is only reported gone.
    assert recorder.outcomes("completes-and-goes") == ["running"]
    assert recorder.seen("born-and-gone") == []
    assert recorder.outcomes("stays") == ["running"]  # unchanged: not re-emitted


def test_a_completion_and_deletion_in_retained_history_are_both_delivered(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "ttl")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    kube.stop()
    kube.jobs.complete_job("ml-batch", "ttl")
    kube.jobs.delete_job("ml-batch", "ttl")
    kube.start()
    wait_until(lambda: recorder.gone() == ["ttl"])
    facts = [f for f in recorder.facts if isinstance(f, JobSeen | JobGone) and f.name == "ttl"]
    assert isinstance(facts[-1], JobGone)
    assert isinstance(facts[-2], JobSeen)
    assert facts[-2].outcome == "succeeded"  # the DELETED event's last state counts
    assert len(requests_of(kube, "list")) == 1


def test_a_5xx_storm_backs_off_reports_unhealthy_and_recovers(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    storm = time.monotonic()
    kube.fail_requests(503)
    kube.drop_watches()
    wait_until(lambda: any(not h.reachable for h in recorder.health()))
    kube.jobs.complete_job("ml-batch", "daily-1")
    wait_until(lambda: kube.controls.errors_answered >= 5)
    storm_seconds = time.monotonic() - storm
    kube.heal()
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"))
    wait_until(lambda: recorder.health()[-1].reachable)
    unhealthy = next(h for h in recorder.health() if not h.reachable)
    assert "503" in unhealthy.detail
    # Jittered backoff from 0.05 s doubling to 0.3 s: five failures need >= 0.475 s.
    assert storm_seconds > 0.45


def test_a_server_restart_on_the_same_port_is_survived(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    port = kube.port
    kube.stop()
    wait_until(lambda: any(not h.reachable for h in recorder.health()))
    kube.jobs.fail_job("ml-batch", "daily-1")
    kube.start()
    assert kube.port == port
    wait_until(lambda: "failed" in recorder.outcomes("daily-1"))
    wait_until(lambda: recorder.health()[-1].reachable)


def test_only_the_configured_namespaces_are_listed_and_watched(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    for namespace in ("a", "b", "c"):
        kube.jobs.create_job(namespace, f"job-{namespace}")
    source = make_source(namespaces=["a", "c"])
    wait_until(lambda: source.synced and kube.open_watches == 2)
    kube.jobs.complete_job("b", "job-b")
    kube.jobs.complete_job("c", "job-c")
    wait_until(lambda: "succeeded" in recorder.outcomes("job-c"))
    assert {s.namespace for s in recorder.seen()} == {"a", "c"}
    assert {r.namespace for r in kube.requests if r.resource == "jobs"} == {"a", "c"}


ROLE_FOR_ONE_NAMESPACE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: sla-monitor, namespace: ml-batch}
rules:
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [list, watch]
"""


def test_403_names_the_missing_permission_and_reports_unhealthy(
    recorder: Recorder, make_source: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="monitor.sources")
    with FakeKubeApi(rbac_yaml=[ROLE_FOR_ONE_NAMESPACE]) as kube:
        kube.jobs.create_job("ml-batch", "daily-1")
        make_source(kube)
        wait_until(lambda: any(not h.reachable for h in recorder.health()))
        unhealthy = next(h for h in recorder.health() if not h.reachable)
        assert "403" in unhealthy.detail
        message = "\n".join(record.getMessage() for record in caplog.records)
        assert "list" in message
        assert "jobs" in message
        assert "ClusterRole" in message
        assert recorder.seen() == []


def test_a_role_for_the_configured_namespace_is_enough(
    recorder: Recorder, make_source: SourceFactory
) -> None:
    with FakeKubeApi(rbac_yaml=[ROLE_FOR_ONE_NAMESPACE]) as kube:
        kube.jobs.create_job("ml-batch", "daily-1")
        source = make_source(kube, namespaces=["ml-batch"])
        wait_until(lambda: source.synced and kube.open_watches == 1)
        assert [h.reachable for h in recorder.health()] == [True]
        assert recorder.outcomes("daily-1") == ["running"]


def test_malformed_objects_are_logged_and_skipped(
    kube: FakeKubeApi,
    recorder: Recorder,
    make_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.sources")
    kube.put_raw("batch", "jobs", "ml-batch", "no-uid", {"metadata": {"name": "no-uid"}})
    kube.jobs.create_job("ml-batch", "good")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    broken = {
        "metadata": {"name": "bad-status", "namespace": "ml-batch", "uid": "u-1"},
        "status": {"conditions": "not a list", "startTime": "yesterday"},
    }
    kube.put_raw("batch", "jobs", "ml-batch", "bad-status", broken)
    kube.jobs.complete_job("ml-batch", "good")
    wait_until(lambda: "succeeded" in recorder.outcomes("good"))
    assert {s.name for s in recorder.seen()} == {"good"}
    assert source.skipped == 2  # counted for sla_monitor_input_skipped_total
    message = "\n".join(record.getMessage() for record in caplog.records)
    assert "no-uid" in message
    assert "bad-status" in message


def test_a_silent_watch_is_reopened(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source(silence_timeout=0.5)
    wait_until(lambda: source.synced and kube.open_watches == 1)
    kube.hold_watches()
    kube.jobs.complete_job("ml-batch", "daily-1")
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"), timeout=5)
    assert len(requests_of(kube, "watch")) >= 2
    assert len(requests_of(kube, "list")) == 1


def test_the_watermark_never_passes_an_undelivered_change(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: recorder.watermarks())
    kube.stop()
    kube.jobs.complete_job("ml-batch", "daily-1")
    wait_until(lambda: any(not h.reachable for h in recorder.health()))
    frozen, checks = source.watermark, source.watermark_checks
    wait_until(lambda: source.watermark_checks >= checks + 10)
    assert source.watermark == frozen  # no progress while disconnected
    kube.compact()
    kube.start()
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"))
    facts = recorder.facts
    delivered = next(
        i
        for i, f in enumerate(facts)
        if isinstance(f, JobSeen) and f.name == "daily-1" and f.outcome == "succeeded"
    )
    change = recorder.seen("daily-1")[-1].completion_time
    assert change is not None
    wait_until(lambda: (source.watermark or change) > change, timeout=5)
    for fact in facts[:delivered]:
        if isinstance(fact, Watermark):
            assert fact.seen_up_to < change
    marks = [w.seen_up_to for w in recorder.watermarks()]
    assert marks == sorted(marks)
