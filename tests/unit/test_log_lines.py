"""Log lines and their timestamps, as the kubelet and Cloud Logging write them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.core.rfc3339 import parse_rfc3339
from monitor.sources.kube.pods import JOB_PODS
from monitor.sources.logs.pods import timestamped_lines

STAMP = "2026-11-27T09:00:00.123456789Z"


def test_lines_split_only_on_newlines_so_a_container_cannot_forge_a_stamp() -> None:
    forged = "2030-01-01T00:00:00Z Traceback (most recent call last):"
    raw = f"{STAMP} ok\x1c{forged}\n{STAMP} next\u2028{forged}\r\n".encode()
    lines = list(timestamped_lines(raw))
    assert [line.text for line in lines] == [f"ok\x1c{forged}", f"next\u2028{forged}"]
    assert {line.time for line in lines} == {datetime(2026, 11, 27, 9, 0, 0, 123456, UTC)}


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-11-27T09:00:00"]
)
def test_an_out_of_range_or_naive_stamp_is_a_value_error_not_a_crash(stamp: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_rfc3339(stamp)


def test_a_line_with_an_unusable_stamp_keeps_the_previous_time() -> None:
    raw = f"{STAMP} first\n9999-12-31T23:59:59-14:00 second\n".encode()
    lines = list(timestamped_lines(raw))
    assert [line.text for line in lines] == ["first", "9999-12-31T23:59:59-14:00 second"]
    assert lines[1].time == lines[0].time


def controlling_job(labels: dict[str, str], *owners: dict[str, object]) -> str | None:
    meta = {"name": "p", "namespace": "ml", "uid": "u", "labels": labels}
    pod = JOB_PODS.codec.reduce_mapping({"metadata": {**meta, "ownerReferences": list(owners)}})
    assert (pod.job is None) == (pod.job_uid is None)
    return pod.job


JOB_OWNER = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "name": "daily-1",
    "uid": "job-uid",
    "controller": True,
}


def test_a_pod_belongs_to_the_job_that_controls_it_not_to_its_label() -> None:
    label = {"batch.kubernetes.io/job-name": "daily-1"}
    assert controlling_job(label, JOB_OWNER) == "daily-1"
    assert controlling_job(label) is None  # a bare pod wearing the label
    forged = {**JOB_OWNER, "controller": False}
    assert controlling_job(label, forged) is None
    other = {**JOB_OWNER, "name": "other-7"}
    assert controlling_job(label, other) is None  # the label and the owner disagree
    replica_set = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "daily-1"}
    assert controlling_job(label, {**replica_set, "controller": True}) is None
