"""The fake's filter language: what it matches, and that it refuses what it cannot read."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.testing.logging_filter import FilterError, compile_filter

ENTRY: dict[str, Any] = {
    "insertId": "abc",
    "resource": {
        "type": "k8s_container",
        "labels": {"namespace_name": "ml-batch", "pod_name": "train-x1"},
    },
    "timestamp": "2026-11-27T00:00:05.123456789Z",
    "severity": "ERROR",
    "labels": {"k8s-pod/job-name": "train"},
    "textPayload": "Traceback (most recent call last):",
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('resource.type="k8s_container"', True),
        ('resource.type="K8S_CONTAINER"', True),  # case-insensitive strings
        ('resource.labels.namespace_name=("other" OR "ml-batch")', True),
        ('resource.labels.namespace_name=("other" OR "more")', False),
        ('textPayload:"most recent call"', True),
        ('jsonPayload.message:"Traceback"', False),
        ('textPayload:"Traceback" OR jsonPayload.message:"Traceback"', True),
        ('timestamp>="2026-11-27T00:00:05Z" AND timestamp<"2026-11-27T00:00:06Z"', True),
        ('timestamp>"2026-11-27T09:00:05+09:00"', True),  # offsets compare as instants
        ('timestamp>="2026-11-27T00:00:06Z"', False),
        ('labels."k8s-pod/job-name"="train"', True),
        ("severity>=WARNING", True),
        ("severity<ERROR", False),
        ('NOT "traceback"', False),
        ('-"traceback"', False),
        ('resource.labels.pod_name!="other"', True),
        ('jsonPayload.message!="x"', True),  # a missing field is "not equal"
        ('"train-x1"', True),  # global restriction searches every field
        # OR binds tighter than AND in this language: (a OR NOT b) AND (NOT c OR d)
        ('"traceback" OR NOT "zzz" AND NOT "traceback" OR "zzz"', False),
        ('resource.type=k8s_container resource.labels.pod_name="train-x1"', True),
        ("", True),
    ],
)
def test_matches(query: str, expected: bool) -> None:
    assert compile_filter(query)(ENTRY) is expected


@pytest.mark.parametrize(
    "query",
    [
        'textPayload=~"Trace.*"',
        'textPayloads:"x"',
        'resource.name="x"',
        'timestamp>="yesterday"',
        "timestamp>=2026-11-27T00:00:00Z",
        'log_id("stderr")',
        '(resource.type="k8s_container"',
        'resource.type="k8s_container" AND',
        'textPayload:"unterminated',
        "x" * 20_001,
    ],
)
def test_refuses(query: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(query)
