"""Job end events from Cloud Logging through the real google-cloud-logging client and the
fake API: the filter sent, the facts made (the same as the API's, marked as events), paging,
the cursor across restarts, malformed entries, and the shared read budget."""

from __future__ import annotations

from datetime import timedelta

from monitor.core.facts import JOB_EVENTS, JobSeen, Watermark
from monitor.sources.logs.budget import RequestBudget
from monitor.sources.logs.cloud import EVENTS_INGESTION_ALLOWANCE
from monitor.testing.logging_api import container_entry, job_event_entry
from tests.integration.logging_support import NAMESPACE, Harness, ago


def runs(harness: Harness) -> list[JobSeen]:
    return [fact for fact in harness.facts if isinstance(fact, JobSeen)]


def events_watermarks(harness: Harness) -> list[Watermark]:
    return [f for f in harness.facts if isinstance(f, Watermark) and f.source == JOB_EVENTS]


def test_end_events_become_the_same_facts_as_the_api_gives(harness: Harness) -> None:
    source = harness.source(events=True)
    done, failed, late = ago(30), ago(20), ago(10)
    harness.api.add(
        job_event_entry(namespace=NAMESPACE, job="nightly-29311200", uid="u1",
                        reason="Completed", at=done, logged_at=done + timedelta(seconds=3)),
        job_event_entry(namespace=NAMESPACE, job="train-29311260", uid="u2",
                        reason="BackoffLimitExceeded", at=failed, time_field="eventTime"),
        job_event_entry(namespace=NAMESPACE, job="adhoc", uid="u3", reason="DeadlineExceeded",
                        at=late, time_field="none"),
    )  # fmt: skip
    source.poll_once()
    by_uid = {run.uid: run for run in runs(harness)}
    assert set(by_uid) == {"u1", "u2", "u3"}
    first, second, third = by_uid["u1"], by_uid["u2"], by_uid["u3"]
    assert (first.outcome, first.completion_time, first.cronjob) == ("succeeded", done, "nightly")
    assert first.witness == "events"
    assert first.failed_at is None
    assert first.start_time is None  # an event has no start: never invented
    assert (second.outcome, second.reason, second.failed_at) == (
        "failed", "BackoffLimitExceeded", failed
    )  # fmt: skip
    assert second.message == "Job has reached the specified backoff limit"
    assert second.cronjob == "train"
    assert (third.cronjob, third.failed_at) == (None, late)  # no CronJob name; entry time
    [watermark] = events_watermarks(harness)
    assert watermark.seen_up_to <= harness.clock() - EVENTS_INGESTION_ALLOWANCE


def test_the_documented_events_filter_is_sent_and_other_events_never_count(
    harness: Harness,
) -> None:
    source = harness.source(events=True)
    at = ago(5)
    other_reason = job_event_entry(
        namespace=NAMESPACE, job="nightly-1", uid="u1", reason="SuccessfulCreate", at=at
    )
    pod_event = job_event_entry(
        namespace=NAMESPACE, job="nightly-1", uid="u1", reason="Completed", at=at
    )
    pod_event["jsonPayload"]["involvedObject"]["kind"] = "Pod"
    other_namespace = job_event_entry(
        namespace="elsewhere", job="nightly-2", uid="u2", reason="Completed", at=at
    )
    other_cluster = job_event_entry(
        namespace=NAMESPACE, job="nightly-3", uid="u3", reason="Completed", at=at, cluster="b"
    )
    container_log = container_entry(namespace=NAMESPACE, pod="p", text="Completed", timestamp=at)
    wanted = job_event_entry(namespace=NAMESPACE, job="nightly-4", uid="u4", reason="Completed",
                             at=at)  # fmt: skip
    harness.api.add(other_reason, pod_event, other_namespace, other_cluster, container_log, wanted)
    source.poll_once()
    assert [run.uid for run in runs(harness)] == ["u4"]
    request = harness.api.requests[-1]
    since = request.filter.rsplit('timestamp>="', 1)[1].rstrip('"')
    assert request.filter == (
        'logName="projects/test-project/logs/events" AND resource.type="k8s_cluster" '
        'AND resource.labels.cluster_name="test-cluster" '
        'AND jsonPayload.involvedObject.kind="Job" '
        'AND jsonPayload.reason=("Completed" OR "BackoffLimitExceeded" OR "DeadlineExceeded") '
        'AND jsonPayload.involvedObject.namespace=("ml-batch") '
        f'AND timestamp>="{since}"'
    )
    assert request.body["orderBy"] == "timestamp asc"


def test_many_events_are_paged_and_the_watermark_waits_for_the_last_page(
    harness: Harness,
) -> None:
    start = ago(600)
    harness.api.add(
        *(
            job_event_entry(namespace=NAMESPACE, job=f"nightly-{index}", uid=f"u{index}",
                            reason="Completed", at=start + timedelta(milliseconds=index * 10))
            for index in range(5200)
        )
    )  # fmt: skip
    source = harness.source(events=True)
    source._events.checked_up_to = start - timedelta(minutes=1)  # type: ignore[union-attr]
    source.poll_once()  # 5 pages of 1000: not all of them
    assert len(runs(harness)) == 5000
    assert events_watermarks(harness) == []
    source.poll_once()
    assert sorted(int(run.uid[1:]) for run in runs(harness)) == list(range(5200))
    assert len(events_watermarks(harness)) == 1


def test_a_restart_from_the_cursor_neither_misses_nor_repeats_an_event(harness: Harness) -> None:
    first = harness.source(events=True)
    harness.api.add(
        job_event_entry(namespace=NAMESPACE, job="a-1", uid="u1", reason="Completed", at=ago(9))
    )
    first.poll_once()
    saved = first.events_cursor()
    assert saved is not None
    harness.api.add(
        job_event_entry(namespace=NAMESPACE, job="a-2", uid="u2", reason="Completed", at=ago(5))
    )
    second = harness.source(events=True, events_cursor=saved)
    second.poll_once()
    assert [run.uid for run in runs(harness)] == ["u1", "u2"]


def test_malformed_event_entries_are_skipped_counted_and_the_rest_is_read(
    harness: Harness,
) -> None:
    source = harness.source(events=True)
    at = ago(5)
    broken = []
    for change in (
        lambda e: e["jsonPayload"]["involvedObject"].pop("name"),
        lambda e: e["jsonPayload"]["involvedObject"].pop("uid"),
        lambda e: e["jsonPayload"].update(lastTimestamp="yesterday"),
        lambda e: e["jsonPayload"].update(lastTimestamp="9999-01-01T00:00:00Z"),
    ):
        entry = job_event_entry(namespace=NAMESPACE, job="x-1", uid="ux", reason="Completed", at=at)
        change(entry)
        broken.append(entry)
    good = job_event_entry(namespace=NAMESPACE, job="x-2", uid="ok", reason="Completed", at=at)
    harness.api.add(*broken, good)
    source.poll_once()
    assert [run.uid for run in runs(harness)] == ["ok"]
    assert source.skipped == len(broken)
    assert len(events_watermarks(harness)) == 1


def test_both_readers_share_one_budget_and_never_meet_the_quota(harness: Harness) -> None:
    harness.api.quota_per_minute = 60
    budget = RequestBudget(per_minute=50)
    source = harness.source(events=True, budget=budget)
    waits = [source.poll_once() for _ in range(40)]  # 2 requests a poll: 80 wanted
    statuses = [request.status for request in harness.api.requests]
    assert len(statuses) == 50
    assert 429 not in statuses
    assert waits[-1] > 1.0  # the next poll waits for the budget, not the poll interval
    assert any(f.source == JOB_EVENTS for f in events_watermarks(harness))


def test_without_events_no_events_query_is_sent(harness: Harness) -> None:
    source = harness.source(events=False)
    harness.api.add(
        job_event_entry(namespace=NAMESPACE, job="a-1", uid="u1", reason="Completed", at=ago(5))
    )
    source.poll_once()
    assert runs(harness) == []
    assert source.events_cursor() is None
    assert all("logs/events" not in request.filter for request in harness.api.requests)
