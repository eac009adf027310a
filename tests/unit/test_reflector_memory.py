"""The reflector remembers a compact memo per delivered object, not the object: the same
facts come out (an equal copy is not re-emitted, a changed one is, a decided outcome
stands, a vanished run is reported by its identity), at a fraction of the memory.

Lists go through the real client to the fake API server on loopback; watch lines go
through the reflector's own event path.
"""

from __future__ import annotations

import gc
import json
import random
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.core.facts import Fact, JobGone, JobSeen
from monitor.sources.argo.workflows import WORKFLOWS
from monitor.sources.kube.pods import JOB_PODS, PodSeen
from monitor.sources.kube.reflector import Memo, Reflector, ReflectorSettings, fingerprint
from monitor.sources.kube.resources import JOBS
from monitor.sources.kube.source import KubeRunSource
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_workloads import JOBS as JOB_TYPE
from monitor.testing.kube_workloads import JobController, job_object

NINE = datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


class Lists:
    """A Job reflector whose sink is the real Kubernetes source (not started): what it
    emits is recorded as facts; `relist` runs one full list against the fake."""

    def __init__(self, kube: FakeKubeApi) -> None:
        self.facts: list[Fact] = []
        client = kube.api_client()
        self.source = KubeRunSource(client, self.facts.append)
        self.reflector = Reflector(
            client,
            JOBS,
            None,
            self.source,
            ReflectorSettings(page_size=2),
            threading.Event(),
            random.Random(7),
        )

    def relist(self) -> list[Fact]:
        return self._new(self.reflector._relist)

    def watch_line(self, kind: str, obj: dict[str, Any]) -> list[Fact]:
        line = json.dumps({"type": kind, "object": obj}).encode()
        return self._new(lambda: self.reflector._event(line, "1"))

    def _new(self, action: Any) -> list[Fact]:
        before = len(self.facts)
        action()
        return [fact for fact in self.facts[before:] if isinstance(fact, JobSeen | JobGone)]


def seen_names(facts: list[Fact]) -> list[str]:
    return sorted(fact.name for fact in facts if isinstance(fact, JobSeen))


def test_an_equal_copy_is_not_emitted_again_and_a_changed_one_is(kube: FakeKubeApi) -> None:
    for name in ("a", "b", "c"):
        kube.jobs.create_job("ml", name, labels={"team": "x"})
    lists = Lists(kube)
    assert seen_names(lists.relist()) == ["a", "b", "c"]
    # An annotation changes nothing the facts carry: the copies are equal.
    kube.store.modify(JOB_TYPE, "ml", "b", lambda job: job["metadata"].update(annotations={}))
    assert lists.relist() == []
    # A label alone is a change (hash(JobSeen) leaves labels out; the fingerprint does not).
    kube.store.modify(JOB_TYPE, "ml", "b", lambda job: job["metadata"]["labels"].update(team="y"))
    [changed] = lists.relist()
    assert isinstance(changed, JobSeen)
    assert (changed.name, changed.labels["team"]) == ("b", "y")
    # The same through a watch: a repeated copy is silent, a new start time is emitted.
    current = kube.store.get("jobs", "ml", "c").obj
    assert lists.watch_line("MODIFIED", current) == []
    later = json.loads(json.dumps(current))
    later.setdefault("status", {})["startTime"] = "2026-11-27T09:00:00Z"
    [started] = lists.watch_line("MODIFIED", later)
    assert isinstance(started, JobSeen)
    assert started.start_time == NINE


def test_label_order_alone_is_no_change() -> None:
    job = JOBS.codec.reduce_mapping(job_object("ml", "a", labels={"x": "1", "y": "2"}))
    reordered = replace(job, labels=dict(reversed(list(job.labels.items()))))
    assert list(reordered.labels) != list(job.labels)
    assert fingerprint(reordered) == fingerprint(job)
    assert fingerprint(replace(job, labels={**job.labels, "x": "2"})) != fingerprint(job)


def test_a_decided_outcome_stands_over_later_copies(kube: FakeKubeApi) -> None:
    kube.jobs.create_job("ml", "daily")
    lists = Lists(kube)
    lists.relist()
    kube.jobs.complete_job("ml", "daily", at=NINE)
    [done] = lists.relist()
    assert isinstance(done, JobSeen)
    assert (done.outcome, done.completion_time) == ("succeeded", NINE)
    assert lists.reflector._known[done.uid].kept is done.completion_time  # nothing more kept
    # A contradicting, earlier failure shows up later: the first decision stands, so the
    # settled copy equals the delivered one and nothing is emitted.
    kube.jobs.fail_job("ml", "daily", at=NINE - timedelta(minutes=5), reason="Evicted")
    assert lists.relist() == []
    # Any other change is emitted, still with the decided outcome.
    kube.store.modify(JOB_TYPE, "ml", "daily", lambda job: job["metadata"]["labels"].update(z="1"))
    [relabelled] = lists.relist()
    assert isinstance(relabelled, JobSeen)
    assert (relabelled.outcome, relabelled.completion_time) == ("succeeded", NINE)
    assert (relabelled.reason, relabelled.failed_at) == (None, None)
    # And on the DELETED event: emitted once more (always), settled, then gone.
    last = kube.store.get("jobs", "ml", "daily").obj
    deleted, gone = lists.watch_line("DELETED", last)
    assert isinstance(deleted, JobSeen)
    assert (deleted.outcome, deleted.completion_time) == ("succeeded", NINE)
    assert gone == JobGone(uid=deleted.uid, namespace="ml", name="daily")
    assert lists.reflector._known == {}


def test_a_failure_keeps_its_reason_and_time(kube: FakeKubeApi) -> None:
    kube.jobs.create_job("ml", "daily")
    lists = Lists(kube)
    lists.relist()
    kube.jobs.fail_job("ml", "daily", at=NINE, reason="DeadlineExceeded")
    [failed] = lists.relist()
    assert isinstance(failed, JobSeen)
    assert (failed.outcome, failed.reason, failed.failed_at) == ("failed", "DeadlineExceeded", NINE)
    kube.jobs.complete_job("ml", "daily", at=NINE - timedelta(hours=1))
    assert lists.relist() == []


def test_a_run_missing_from_a_relist_is_reported_by_its_identity(kube: FakeKubeApi) -> None:
    kube.jobs.create_job("ml", "kept")
    doomed = kube.jobs.create_job("other", "doomed")
    lists = Lists(kube)
    lists.relist()
    kube.store.delete(JOB_TYPE, "other", "doomed")
    assert lists.relist() == [
        JobGone(uid=doomed["metadata"]["uid"], namespace="other", name="doomed")
    ]
    assert [memo.name for memo in lists.reflector._known.values()] == ["kept"]


def test_every_codec_gives_a_bare_item_of_an_identity() -> None:
    memo = Memo(uid="u1", namespace="ml", name="x", fingerprint=0)
    job, workflow, pod = (
        codec.bare(memo) for codec in (JOBS.codec, WORKFLOWS.codec, JOB_PODS.codec)
    )
    assert isinstance(job, JobSeen)
    assert isinstance(workflow, JobSeen)
    assert workflow.kind == "Workflow"
    assert isinstance(pod, PodSeen)
    for item in (job, workflow, pod):
        assert (item.uid, item.namespace, item.name) == ("u1", "ml", "x")


def test_a_memo_costs_under_500_bytes_per_job() -> None:
    """What the cache holds for typical Jobs (most finished, some failed, some running),
    their strings decoded while measured: the uid, the name and the kept outcome stay."""
    count = 5_000
    objects = []
    for index in range(count):
        job = job_object(f"team-{index % 20}", f"daily-report-{index}", cronjob="daily")
        if index % 10 < 8:
            JobController._success_criteria(job, NINE)
            JobController._complete(job, NINE)
        elif index % 10 == 8:
            job["status"] = {"conditions": [_failed("BackoffLimitExceeded")]}
        objects.append(json.dumps(job).encode())

    class Discard:
        lock = threading.RLock()

        def emit(self, item: JobSeen) -> None: ...
        def vanished(self, item: JobSeen) -> None: ...
        def contact(self, ok: bool, detail: str = "") -> None: ...

    reflector = Reflector(
        FakeKubeApi().api_client(),
        JOBS,
        None,
        Discard(),
        ReflectorSettings(),
        threading.Event(),
        random.Random(7),
    )
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for raw in objects:
            reflector._deliver(JOBS.codec.reduce_raw(raw))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(reflector._known) == count
    assert held / count < 500, f"{held / count:.0f} bytes per Job"


def _failed(reason: str) -> dict[str, str]:
    return {
        "type": "Failed",
        "status": "True",
        "reason": reason,
        "message": "Job has reached the specified backoff limit",
        "lastTransitionTime": "2026-11-27T09:05:00Z",
    }
