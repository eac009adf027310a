"""The Kubernetes watermark under churn, relist loops, crashed readers and broken streams,
through the real kubernetes client against the fake API server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.core.facts import Fact, JobSeen, Watermark
from monitor.sources.kube.source import KubeRunSource
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_workloads import JOBS, job_object
from monitor.testing.wait import wait_until
from tests.integration.kube_support import (
    Recorder,
    SourceFactory,
    kube,
    make_source,
    recorder,
    requests_of,
)

__all__ = ["kube", "make_source", "recorder"]  # fixtures

#: The production watermark margin (monitor.runtime.pipeline.Timings).
MARGIN = timedelta(seconds=1.25)


def test_the_watermark_advances_under_constant_churn_and_never_passes_a_change(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    """200 updates/s leave no quiet moment on the watch: the watermark advances by
    progress (probe the collection's version, wait for the watch to pass it)."""
    kube.jobs.create_job("ml-batch", "daily-1")
    with kube.jobs.churn(200) as writes:
        source = make_source(settle=0.2, watermark_interval=0.1, watermark_margin=timedelta(0))
        wait_until(lambda: source.synced and writes[0] > 100)
        started = datetime.now(UTC)
        wait_until(lambda: (source.watermark or started) > started, timeout=3)
        kube.jobs.complete_job("ml-batch", "daily-1", early=False)
        completed = datetime.now(UTC)
        wait_until(lambda: (source.watermark or completed) > completed, timeout=3)
    facts = recorder.facts
    success = next(
        i for i, f in enumerate(facts) if isinstance(f, JobSeen) and f.outcome == "succeeded"
    )
    for fact in facts[:success]:
        if isinstance(fact, Watermark):
            assert fact.seen_up_to < completed, "a watermark passed a change not yet emitted"
    probes = [r for r in kube.requests if r.verb == "list" and r.limit == 1]
    assert probes, "the busy rule was never used: the test did not test it"
    assert len(requests_of(kube, "list")) == 1  # probes are not relists


def test_a_relist_loop_freezes_the_watermark_and_is_reported(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    source = make_source(backoff_max=0.2)
    wait_until(lambda: recorder.watermarks() and kube.open_watches == 1)
    kube.expire_every_watch()
    kube.drop_watches()
    wait_until(lambda: any("in a loop" in h.detail for h in recorder.health()), timeout=10)
    frozen = source.watermark
    lists = len(requests_of(kube, "list"))
    wait_until(lambda: len(requests_of(kube, "list")) >= lists + 2, timeout=10)
    assert source.watermark == frozen, "the watermark moved while every watch expired"
    assert recorder.health()[-1].reachable is False
    kube.expire_every_watch(False)
    wait_until(lambda: recorder.health()[-1].reachable, timeout=10)
    wait_until(lambda: (source.watermark or datetime.min) > (frozen or datetime.min), timeout=5)


def test_garbage_on_the_watch_connection_reconnects_the_reader(
    kube: FakeKubeApi, recorder: Recorder, make_source: SourceFactory
) -> None:
    kube.jobs.create_job("ml-batch", "daily-1")
    source = make_source()
    wait_until(lambda: source.synced and kube.open_watches == 1)
    assert kube.garble_watches() == 1
    kube.jobs.complete_job("ml-batch", "daily-1")
    wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"), timeout=5)
    wait_until(lambda: kube.open_watches == 1)
    assert len(requests_of(kube, "watch")) >= 2


class CrashOnce:
    """An emit callback that raises, once, on the first completion it is handed — an
    exception type no reader expects, as a bug would raise."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.crashed = False

    def __call__(self, fact: Fact) -> None:
        if isinstance(fact, JobSeen) and fact.outcome == "succeeded" and not self.crashed:
            self.crashed = True
            raise LookupError("a bug in whatever consumes facts")
        self.recorder(fact)


def test_a_reader_that_crashes_is_reported_restarted_and_loses_nothing(
    kube: FakeKubeApi, recorder: Recorder
) -> None:
    from monitor.sources.kube.source import KubeRunSource

    kube.jobs.create_job("ml-batch", "daily-1")
    emit = CrashOnce(recorder)
    source = KubeRunSource(
        kube.api_client(),
        emit,
        backoff_initial=0.05,
        backoff_max=0.3,
        watermark_interval=0.05,
        settle=0.05,
    ).start()
    try:
        wait_until(lambda: source.synced and kube.open_watches == 1)
        kube.jobs.complete_job("ml-batch", "daily-1")
        wait_until(lambda: emit.crashed)
        wait_until(lambda: any("crashed" in h.detail for h in recorder.health()), timeout=5)
        # Restarted: it relists, and the completion whose delivery crashed is delivered.
        wait_until(lambda: "succeeded" in recorder.outcomes("daily-1"), timeout=5)
        wait_until(lambda: recorder.health()[-1].reachable, timeout=5)
        assert source.reader_restarts == 1
        assert len(requests_of(kube, "list")) == 2
    finally:
        source.stop()


def test_a_reader_slowed_by_its_consumer_is_never_taken_for_a_quiet_watch(
    kube: FakeKubeApi,
) -> None:
    """A burst of changes the reader needs seconds to hand on (a slow consumer): the
    server is never quiet, only the reader is busy, so no watermark may pass a change
    still unread. The production margin is kept: it is what covers delivery latency (the
    fake shares this process, so a busy machine delays its sends). Judging "quiet" by the
    time since bytes last arrived let hundreds of changes arrive behind it here."""
    from monitor.sources.kube.source import KubeRunSource

    keys = []
    for index in range(2000):
        namespace, name = f"ns-{index % 50}", f"burst-{index}"
        kube.store.create(JOBS, namespace, job_object(namespace, name))
        keys.append((namespace, name))
    events: list[tuple[str, float]] = []  # ("seen", seq) / ("mark", seen up to)

    def slow_emit(fact: Fact) -> None:
        if isinstance(fact, JobSeen) and "seq" in fact.labels:
            time.sleep(0.0005)  # the consumer's work, under the source's lock
            events.append(("seen", float(fact.labels["seq"])))
        elif isinstance(fact, Watermark):
            events.append(("mark", fact.seen_up_to.timestamp()))

    source = KubeRunSource(
        kube.api_client(),
        slow_emit,
        watermark_margin=MARGIN,  # covers the fake's own delivery latency on a busy machine
        watermark_interval=0.25,
        settle=0.2,
    ).start()
    written: dict[int, float] = {}
    try:
        wait_until(lambda: source.synced and source.watermark is not None)
        for seq in range(6000):
            namespace, name = keys[seq % len(keys)]

            def label(job: dict[str, Any], seq: int = seq) -> None:
                job["metadata"]["labels"]["seq"] = str(seq)

            kube.store.modify(JOBS, namespace, name, label)
            written[seq] = time.time()
        wait_until(lambda: ("seen", 5999.0) in events[-50:], timeout=60)
    finally:
        source.stop()
    newest_mark, late = 0.0, 0
    for kind, value in events:
        if kind == "mark":
            newest_mark = max(newest_mark, value)
        elif written[int(value)] < newest_mark:  # (the mark already has the margin taken off)
            late += 1
    assert late == 0, f"{late} changes were emitted after a watermark had passed them"


def test_a_wanted_instant_is_reached_at_once_not_at_the_next_interval(kube: FakeKubeApi) -> None:
    """A deadline's decision waits for the watermark to pass it: the source looks again
    at that instant plus the margin instead of up to an interval later, and never emits a
    watermark the margin does not allow."""
    kube.jobs.create_job("ml-batch", "daily-1")
    margin = timedelta(seconds=0.5)
    emitted: list[tuple[datetime, Watermark]] = []

    def record(fact: Fact) -> None:
        if isinstance(fact, Watermark):
            emitted.append((datetime.now(UTC), fact))

    source = KubeRunSource(
        kube.api_client(), record, silence_timeout=60.0, settle=0.05,
        watermark_interval=600.0, watermark_margin=margin,
    ).start()  # fmt: skip
    try:
        wait_until(lambda: source.synced and kube.open_watches == 1)
        assert emitted == []  # the interval alone would wait ten minutes
        wanted = datetime.now(UTC) + timedelta(seconds=1)
        source.want_watermark(wanted)
        wait_until(lambda: (source.watermark or wanted - margin) >= wanted, timeout=30)
    finally:
        source.stop()
    for at, mark in emitted:
        assert mark.seen_up_to <= at - margin, "a watermark the margin does not allow"
    first = next(at for at, mark in emitted if mark.seen_up_to >= wanted)
    assert first - (wanted + margin) < timedelta(seconds=10)  # not the interval's 600 s
