# ruff: noqa: F811  (pytest fixtures imported from kube_support are used as parameters)
"""The source's paged list (prefetching or not), typed decoding and its metrics counters."""

from __future__ import annotations

import gc
import logging
from collections import Counter

import pytest

from monitor.core.facts import Fact, JobSeen
from monitor.sources.kube.source import KubeRunSource
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


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "sequential"])
def test_every_page_is_delivered_once_in_list_order(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory, prefetch: bool
) -> None:
    for index in range(23):
        kube.jobs.create_job(f"ns-{index % 3}", f"job-{index:02}", cronjob="daily")
    source = make_source(page_size=5, prefetch_pages=prefetch)
    wait_until(lambda: source.synced)
    names = [seen.name for seen in recorder.seen()]
    listed = [e.obj["metadata"]["name"] for e in kube.store.objects("jobs")]
    assert sorted(names) == sorted(listed)
    assert len(names) == 23
    assert len(requests_of(kube, "list")) == 5


def test_a_page_failing_mid_list_restarts_the_list_without_repeating_facts(
    kube: FakeKubeApi,
) -> None:
    for index in range(12):
        kube.jobs.create_job("ml-batch", f"job-{index:02}")
    facts: list[Fact] = []
    armed = [True]

    def emit(fact: Fact) -> None:
        facts.append(fact)
        if armed[0] and isinstance(fact, JobSeen):  # while the first page is delivered
            armed[0] = False
            kube.fail_requests(503, count=1)

    source = KubeRunSource(
        kube.api_client(), emit, page_size=3, backoff_initial=0.01, backoff_max=0.05
    ).start()
    try:
        wait_until(lambda: source.synced)
        seen = Counter(fact.name for fact in facts if isinstance(fact, JobSeen))
        assert len(seen) == 12
        assert set(seen.values()) == {1}  # the second list found nothing new to say
        assert source.relists == 2
        assert kube.controls.errors_answered == 1
    finally:
        source.stop()


def test_jobs_that_do_not_fit_the_projection_are_skipped_alone(
    kube: FakeKubeApi,
    recorder: Recorder,
    make_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.sources")
    kube.jobs.create_job("ml-batch", "good-1")
    bad_label = {"metadata": {"name": "bad-label", "namespace": "ml-batch", "uid": "u-1"}}
    bad_label["metadata"]["labels"] = {"team": 7}  # type: ignore[index]
    kube.put_raw("batch", "jobs", "ml-batch", "bad-label", bad_label)
    kube.jobs.create_job("ml-batch", "good-2")
    source = make_source(page_size=2)  # the bad Job shares its page with a good one
    wait_until(lambda: source.synced and kube.open_watches == 1)
    assert {s.name for s in recorder.seen()} == {"good-1", "good-2"}
    bad_uid = {"metadata": {"name": "bad-uid", "namespace": "ml-batch", "uid": 42}}
    kube.put_raw("batch", "jobs", "ml-batch", "bad-uid", bad_uid)
    odd_condition = {
        "metadata": {"name": "odd-condition", "namespace": "ml-batch", "uid": "u-3"},
        "status": {"conditions": [{"type": "Suspended", "status": True, "reason": 3}]},
    }
    kube.put_raw("batch", "jobs", "ml-batch", "odd-condition", odd_condition)
    kube.jobs.complete_job("ml-batch", "good-1")
    wait_until(lambda: "succeeded" in recorder.outcomes("good-1"))
    # A condition nobody reads does not make a Job malformed.
    assert recorder.outcomes("odd-condition") == ["running"]
    assert {s.name for s in recorder.seen()} == {"good-1", "good-2", "odd-condition"}
    message = "\n".join(record.getMessage() for record in caplog.records)
    assert "bad-label" in message
    assert "bad-uid" in message


def test_relists_and_watch_restarts_are_counted(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    assert (source.relists, source.watch_restarts) == (1, 0)
    kube.drop_watches()
    wait_until(lambda: source.watch_restarts == 1)
    assert source.relists == 1
    kube.stop()  # attempts while it is down open nothing and count nothing
    kube.jobs.complete_job("ml-batch", "daily-1")
    kube.compact()
    kube.start()  # the resumed watch opens, meets a 410, and the source lists again
    wait_until(lambda: len(requests_of(kube, "list")) == 2 and kube.open_watches == 1)
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"))
    assert (source.relists, source.watch_restarts) == (2, 2)


def test_gc_collections_are_relaxed_only_while_listing(kube: FakeKubeApi) -> None:
    for index in range(4):
        kube.jobs.create_job("ml-batch", f"job-{index}")
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []

    def emit(fact: Fact) -> None:
        if isinstance(fact, JobSeen):
            during.append(gc.get_threshold())

    source = KubeRunSource(kube.api_client(), emit, page_size=2).start()
    try:
        wait_until(lambda: source.synced)
        assert during
        assert all(threshold[0] >= 50_000 for threshold in during)
        assert all(threshold[1:] == before[1:] for threshold in during)
        wait_until(lambda: gc.get_threshold() == before)
    finally:
        source.stop()
