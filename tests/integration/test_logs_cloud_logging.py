"""The Cloud Logging source through the real google-cloud-logging client and the fake API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from google.api_core.exceptions import BadRequest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging

from monitor.core.facts import SourceHealth, Watermark
from monitor.core.tracebacks import MAX_LINE_CHARS
from monitor.testing.logging_api import container_entry
from monitor.testing.wait import wait_until
from tests.integration.logging_support import NAMESPACE, Harness, ago

VALUE_ERROR = """Traceback (most recent call last):
  File "/app/train.py", line 41, in <module>
    main()
  File "/app/train.py", line 37, in main
    raise ValueError("feature table is empty")
ValueError: feature table is empty"""
CHAINED = """Traceback (most recent call last):
  File "/app/load.py", line 12, in fetch
    return rows[0]
           ~~~~^^^
IndexError: list index out of range

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/load.py", line 20, in <module>
    fetch()
  File "/app/load.py", line 14, in fetch
    raise LookupError("no rows for 2026-11-27") from None
LookupError: no rows for 2026-11-27"""


def test_whole_traceback_in_one_entry_sends_the_documented_filter(harness: Harness) -> None:
    source = harness.source()
    start = ago(5)
    harness.api.add(
        container_entry(
            namespace=NAMESPACE,
            pod="train-abc12",
            text=VALUE_ERROR,
            timestamp=start,
            job="train-1",
            job_uid="uid-train-1",
        )
    )
    source.poll_once()
    [fact] = harness.tracebacks()
    assert (fact.namespace, fact.pod, fact.container, fact.job) == (
        NAMESPACE, "train-abc12", "main", "train-1"
    )  # fmt: skip
    assert fact.job_uid == "uid-train-1"
    assert fact.first_line == "Traceback (most recent call last):"
    assert fact.final_line == "ValueError: feature table is empty"
    assert abs(fact.time - start) < timedelta(milliseconds=1)
    [request] = harness.api.requests
    assert request.body["orderBy"] == "timestamp asc"
    assert request.body["resourceNames"] == ["projects/test-project"]
    since = request.filter.rsplit('timestamp>="', 1)[1].rstrip('"')
    assert request.filter == (
        'resource.type="k8s_container" AND resource.labels.cluster_name="test-cluster" '
        'AND resource.labels.namespace_name=("ml-batch") '
        'AND (textPayload:"Traceback (most recent call last)" '
        'OR jsonPayload.message:"Traceback (most recent call last)") '
        f'AND timestamp>="{since}"'
    )
    assert any(isinstance(f, Watermark) for f in harness.facts)
    assert any(isinstance(f, SourceHealth) and f.reachable for f in harness.facts)


def test_one_entry_per_line_is_grouped_into_one_fact(harness: Harness) -> None:
    source = harness.source()
    harness.api.add(*harness.lines("train-abc12", VALUE_ERROR, ago(5), job="train-1"))
    harness.api.add(*harness.lines("train-abc12", "after the error\nshutting down", ago(4)))
    source.poll_once()
    [fact] = harness.tracebacks()
    assert fact.final_line == "ValueError: feature table is empty"
    assert fact.job == "train-1"
    assert len(harness.api.requests) == 2  # the poll and one follow-up
    source.poll_once()
    source.poll_once()
    assert len(harness.tracebacks()) == 1
    assert len(harness.api.requests) == 4  # steady state: one request per poll


def test_chained_exceptions_report_the_last_final_line(harness: Harness) -> None:
    source = harness.source()
    harness.api.add(*harness.lines("load-x1", CHAINED, ago(5)))
    source.poll_once()
    [fact] = harness.tracebacks()
    assert fact.final_line == "LookupError: no rows for 2026-11-27"
    assert fact.job is None  # no pod labels and no known Job: the engine decides


def test_chained_whole_message_in_json_payload(harness: Harness) -> None:
    source = harness.source()
    message = "ERROR job failed\n" + CHAINED
    harness.api.add(
        container_entry(
            namespace=NAMESPACE, pod="load-x1", text=message, timestamp=ago(3), json_message=True
        )
    )
    source.poll_once()
    [fact] = harness.tracebacks()
    assert fact.final_line == "LookupError: no rows for 2026-11-27"
    assert len(harness.api.requests) == 1  # nothing to follow up


def test_json_payload_one_line_per_entry(harness: Harness) -> None:
    source = harness.source()
    start = ago(5)
    harness.api.add(
        *[
            container_entry(
                namespace=NAMESPACE,
                pod="p1",
                text=line,
                timestamp=start + timedelta(milliseconds=index),
                json_message=True,
            )
            for index, line in enumerate(VALUE_ERROR.splitlines())
        ]
    )
    source.poll_once()
    assert [f.final_line for f in harness.tracebacks()] == ["ValueError: feature table is empty"]


def test_interleaved_pods_and_containers_keep_their_own_lines(harness: Harness) -> None:
    source = harness.source()
    start = ago(10)
    first = harness.lines("pod-a", VALUE_ERROR, start, job="job-a")
    second = harness.lines("pod-b", CHAINED, start + timedelta(microseconds=500), job="job-b")
    sidecar = harness.lines(
        "pod-a", VALUE_ERROR.replace("ValueError", "OSError"), start, container="sidecar"
    )
    interleaved = [entry for trio in zip(first, second, sidecar, strict=False) for entry in trio]
    harness.api.add(*interleaved, *second[len(first) :])
    source.poll_once()
    found = {(f.pod, f.container): (f.job, f.final_line) for f in harness.tracebacks()}
    assert found == {
        ("pod-a", "main"): ("job-a", "ValueError: feature table is empty"),
        ("pod-b", "main"): ("job-b", "LookupError: no rows for 2026-11-27"),
        ("pod-a", "sidecar"): (None, "OSError: feature table is empty"),
    }
    assert len(harness.api.requests) == 2  # all follow-ups share one request


def test_late_lines_and_late_traceback_entries_are_found(harness: Harness) -> None:
    source = harness.source()
    lines = harness.lines("late-1", VALUE_ERROR, ago(20))
    harness.api.add(*lines[:3])  # the rest is not ingested yet
    source.poll_once()
    assert harness.tracebacks() == []
    harness.api.add(*lines[3:])
    source.poll_once()
    assert [f.final_line for f in harness.tracebacks()] == ["ValueError: feature table is empty"]
    # A traceback written before the last poll but ingested after it (inside the overlap).
    harness.api.add(*harness.lines("late-2", CHAINED, ago(30)))
    source.poll_once()
    assert [f.pod for f in harness.tracebacks()] == ["late-1", "late-2"]


def test_duplicate_deliveries_give_one_fact(harness: Harness) -> None:
    source = harness.source()
    entry = container_entry(
        namespace=NAMESPACE, pod="dup-1", text=VALUE_ERROR, timestamp=ago(5), insert_id="same-id"
    )
    harness.api.add(entry, entry)
    lines = harness.lines("dup-2", VALUE_ERROR, ago(4))
    harness.api.add(*lines, *lines)
    for _ in range(3):
        source.poll_once()
    assert sorted(f.pod for f in harness.tracebacks()) == ["dup-1", "dup-2"]


def test_restart_with_cursor_neither_misses_nor_repeats(harness: Harness) -> None:
    source = harness.source()
    harness.api.add(*harness.lines("before", VALUE_ERROR, ago(30)))
    partial = harness.lines("during", CHAINED, ago(20))
    harness.api.add(*partial[:3])  # a traceback still being written at shutdown
    source.poll_once()
    assert [f.pod for f in harness.tracebacks()] == ["before"]
    saved = source.cursor()
    restarted = harness.source(cursor=json.loads(json.dumps(saved)))
    harness.api.add(*partial[3:])
    harness.api.add(*harness.lines("after", VALUE_ERROR, ago(1)))
    restarted.poll_once()
    restarted.poll_once()
    assert [f.pod for f in harness.tracebacks()] == ["before", "during", "after"]
    assert harness.tracebacks()[1].final_line == "LookupError: no rows for 2026-11-27"


@pytest.mark.parametrize("status", [429, 503])
def test_errors_back_off_and_recover(harness: Harness, status: int) -> None:
    source = harness.source()
    harness.api.add(
        container_entry(namespace=NAMESPACE, pod="p", text=VALUE_ERROR, timestamp=ago(2))
    )
    harness.api.fail_next(status, times=2)
    first_delay = source.poll_once()
    [health] = [f for f in harness.facts if isinstance(f, SourceHealth)]
    assert not health.reachable
    assert "429" in health.detail or "503" in health.detail
    assert source.poll_once() > 0  # too early: no request is sent
    assert len(harness.api.requests) == 1
    harness.clock.offset += timedelta(seconds=first_delay)
    second_delay = source.poll_once()
    if status == 429:  # over quota: from twice the 1 s poll interval, doubling
        assert first_delay >= 2.0
        assert second_delay >= 2 * first_delay
    else:  # unreachable: retried promptly, never more than 5 s apart (SPEC)
        assert 0 < first_delay <= 5.0
        assert 0 < second_delay <= 5.0
    harness.clock.offset += timedelta(seconds=second_delay)
    assert source.poll_once() == 1.0
    assert [f.pod for f in harness.tracebacks()] == ["p"]
    assert [f.reachable for f in harness.facts if isinstance(f, SourceHealth)] == [
        False, False, True
    ]  # fmt: skip
    assert len(harness.api.requests) == 3


def test_malformed_entries_are_skipped_and_bounded(harness: Harness) -> None:
    source = harness.source()
    when = ago(5)

    def entry(pod: str, text: str = VALUE_ERROR) -> dict[str, Any]:
        return container_entry(namespace=NAMESPACE, pod=pod, text=text, timestamp=when)

    no_log_name = entry("nolog")  # the library's own entry parser raises on this one
    del no_log_name["logName"]
    no_pod = entry("x")
    del no_pod["resource"]["labels"]["pod_name"]
    no_id = entry("y")
    del no_id["insertId"]
    list_payload = entry("z")
    list_payload["textPayload"] = ["Traceback (most recent call last):"]
    no_payload = entry("w")
    del no_payload["textPayload"]
    no_payload["protoPayload"] = {"@type": "type.googleapis.com/x"}
    surrogates = entry("bytes", VALUE_ERROR + " \udcff\udcfe")
    huge = entry("huge", "Traceback (most recent call last):\n  x\nMemoryError: " + "A" * 10**7)
    far_future = entry("future")  # a forged or corrupt time: outside 1970-2200
    far_future["timestamp"] = "2300-01-01T00:00:00Z"
    malformed = [no_log_name, no_pod, no_id, list_payload, no_payload, surrogates, huge]
    harness.api.add(*malformed, far_future, entry("good"))
    source.poll_once()
    found = {f.pod: f.final_line for f in harness.tracebacks()}
    assert set(found) == {"good", "bytes", "huge", "nolog"}
    assert source.skipped == 4  # the ones the filter lets through, the far future one too
    assert found["good"] == "ValueError: feature table is empty"
    assert found["bytes"].startswith("ValueError: feature table is empty")
    found["bytes"].encode("utf-8")  # safe to send on
    assert len(found["huge"]) == MAX_LINE_CHARS


def test_job_resolved_through_known_jobs_when_labels_are_missing(harness: Harness) -> None:
    source = harness.source()
    harness.jobs[(NAMESPACE, "nightly-28391-xk2p")] = "nightly-28391"
    harness.api.add(*harness.lines("nightly-28391-xk2p", VALUE_ERROR, ago(5)))
    source.poll_once()
    assert [f.job for f in harness.tracebacks()] == ["nightly-28391"]


def test_other_namespaces_are_not_requested(harness: Harness) -> None:
    source = harness.source()
    harness.api.add(
        container_entry(namespace="kube-system", pod="dns", text=VALUE_ERROR, timestamp=ago(3))
    )
    source.poll_once()
    assert harness.tracebacks() == []
    everywhere = harness.source(namespaces=())
    everywhere.poll_once()
    assert [f.namespace for f in harness.tracebacks()] == ["kube-system"]
    assert "namespace_name" not in harness.api.requests[-1].filter


def test_wrong_filter_is_rejected_with_the_api_error_shape(harness: Harness) -> None:
    client = cloud_logging.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": harness.api.url},
    )
    with pytest.raises(BadRequest, match="unsupported operator"):
        list(client.list_entries(filter_='textPayload=~"Trace.*"'))
    with pytest.raises(BadRequest, match="not a LogEntry field"):
        list(client.list_entries(filter_='textPayloads:"Traceback"'))
    request = urllib.request.Request(
        f"{harness.api.url}/v2/entries:list",
        data=json.dumps({"resourceNames": ["projects/test-project"], "filter": "(a"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400
    error = json.loads(raised.value.read())["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"]


def test_runs_on_its_own_thread_until_stopped(harness: Harness) -> None:
    source = harness.source()
    source.start()
    try:
        wait_until(lambda: len(harness.api.requests) >= 1)
        harness.api.add(*harness.lines("threaded", VALUE_ERROR, ago(1)))
        wait_until(lambda: len(harness.tracebacks()) == 1, timeout=10)
    finally:
        source.stop()
    assert harness.tracebacks()[0].final_line == "ValueError: feature table is empty"


def test_a_job_name_label_without_the_jobs_uid_label_claims_no_job(harness: Harness) -> None:
    """Kubernetes labels every Job pod with its Job's uid too; a bare pod wearing only
    another batch's job-name label cannot speak for that Job."""
    source = harness.source()
    harness.api.add(
        container_entry(
            namespace=NAMESPACE, pod="impostor", text=VALUE_ERROR, timestamp=ago(5), job="train-1"
        )
    )
    source.poll_once()
    [fact] = harness.tracebacks()
    assert (fact.pod, fact.job, fact.job_uid) == ("impostor", None, None)
