"""The fake API server answers the real `kubernetes` client like a real API server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_rbac import RequestAttributes

TOKEN = "s3cret"


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN, bookmark_interval=0.1) as fake:
        yield fake


def test_paged_lists_are_a_consistent_snapshot(kube: FakeKubeApi) -> None:
    for index in range(5):
        kube.jobs.create_job("ml", f"job-{index}")
    batch = client.BatchV1Api(kube.api_client())
    first = batch.list_job_for_all_namespaces(limit=2)
    kube.jobs.create_job("ml", "job-0a")  # after the snapshot: not in later pages
    names = [job.metadata.name for job in first.items]
    token = first.metadata._continue
    while token:
        page = batch.list_job_for_all_namespaces(limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [job.metadata.name for job in page.items]
        token = page.metadata._continue
    assert names == [f"job-{index}" for index in range(5)]
    kube.compact()
    with pytest.raises(ApiException) as expired:
        batch.list_job_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    assert expired.value.status == 410


def test_selectors_filter_lists(kube: FakeKubeApi) -> None:
    kube.jobs.create_job("ml", "a", labels={"team": "rec"})
    kube.jobs.create_job("ml", "b", labels={"team": "ads"})
    kube.jobs.create_job("other", "c", labels={"team": "rec"})
    batch = client.BatchV1Api(kube.api_client())
    by_label = batch.list_job_for_all_namespaces(label_selector="team in (rec),!nope")
    assert sorted(job.metadata.name for job in by_label.items) == ["a", "c"]
    by_field = batch.list_namespaced_job("ml", field_selector="metadata.name!=a")
    assert [job.metadata.name for job in by_field.items] == ["b"]


def test_watch_streams_changes_then_410_for_compacted_history(kube: FakeKubeApi) -> None:
    kube.jobs.create_job("ml", "daily")
    batch = client.BatchV1Api(kube.api_client())
    start = batch.list_namespaced_job("ml").metadata.resource_version
    kube.jobs.complete_job("ml", "daily")
    kube.jobs.delete_job("ml", "daily")
    events = [
        (event["type"], event["raw_object"]["metadata"].get("name"))
        for event in watch.Watch().stream(
            batch.list_namespaced_job,
            "ml",
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    ]
    assert events[:3] == [("MODIFIED", "daily"), ("MODIFIED", "daily"), ("DELETED", "daily")]
    assert ("BOOKMARK", None) in events
    kube.compact()
    with pytest.raises(ApiException) as expired:
        list(watch.Watch().stream(batch.list_namespaced_job, "ml", resource_version=start))
    assert expired.value.status == 410


def test_stale_lease_update_conflicts_with_a_status_body(kube: FakeKubeApi) -> None:
    leases = client.CoordinationV1Api(kube.api_client())
    lease = leases.create_namespaced_lease(
        "monitoring",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="sla-monitor"),
            spec=client.V1LeaseSpec(holder_identity="pod-a"),
        ),
    )
    lease.spec.holder_identity = "pod-b"
    leases.replace_namespaced_lease("sla-monitor", "monitoring", lease)
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("sla-monitor", "monitoring", lease)  # stale version
    status = json.loads(conflict.value.body)
    assert (conflict.value.status, status["kind"], status["reason"]) == (409, "Status", "Conflict")
    patched = leases.patch_namespaced_lease(
        "sla-monitor", "monitoring", {"spec": {"holderIdentity": "pod-c"}}
    )
    assert patched.spec.holder_identity == "pod-c"


def test_pod_logs_honour_container_timestamps_tail_and_limit(kube: FakeKubeApi) -> None:
    kube.jobs.create_job(
        "ml", "daily", containers=("main", "sidecar"), logs={"main": "one\ntwo\nthree"}
    )
    core = client.CoreV1Api(kube.api_client())
    pods = core.list_namespaced_pod("ml", label_selector="batch.kubernetes.io/job-name=daily")
    pod = pods.items[0].metadata.name
    with pytest.raises(ApiException) as ambiguous:
        core.read_namespaced_pod_log(pod, "ml")
    assert ambiguous.value.status == 400
    assert core.read_namespaced_pod_log(pod, "ml", container="main") == "one\ntwo\nthree\n"
    tail = core.read_namespaced_pod_log(pod, "ml", container="main", tail_lines=1, timestamps=True)
    stamp, line = tail.strip().split(" ", 1)
    assert line == "three"
    assert stamp.endswith("Z")
    assert core.read_namespaced_pod_log(pod, "ml", container="main", limit_bytes=5) == "one\nt"


def test_a_wrong_token_is_401(kube: FakeKubeApi) -> None:
    api = kube.api_client()
    kube.token = "rotated"
    with pytest.raises(ApiException) as denied:
        client.BatchV1Api(api).list_job_for_all_namespaces()
    assert denied.value.status == 401


CLUSTER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sla-monitor}
rules:
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [list, watch]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
"""


def test_rbac_denies_outside_the_rules_and_records_every_request() -> None:
    with FakeKubeApi(rbac_yaml=[CLUSTER_ROLE]) as kube:
        kube.jobs.create_job("ml", "daily", logs={"main": "hello"})
        api = kube.api_client()
        client.BatchV1Api(api).list_job_for_all_namespaces()
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(api).list_namespaced_pod("ml")
        status = json.loads(forbidden.value.body)
        assert (forbidden.value.status, status["reason"]) == (403, "Forbidden")
        assert (
            'cannot list resource "pods" in API group "" in the namespace "ml"'
            in (status["message"])
        )
        pod = kube.jobs.pods_of("ml", "daily")[0]["metadata"]["name"]
        assert client.CoreV1Api(api).read_namespaced_pod_log(pod, "ml") == "hello\n"
        assert kube.requests == [
            RequestAttributes("list", "batch", "jobs", "", "", ""),
            RequestAttributes("list", "", "pods", "", "ml", ""),
            RequestAttributes("get", "", "pods", "log", "ml", pod),
        ]
