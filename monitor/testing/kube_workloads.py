"""Job and pod lifecycles the way the Job controller writes them (Kubernetes >= 1.31).

A created Job gets running pods labelled `batch.kubernetes.io/job-name`; completing it
first adds `SuccessCriteriaMet` and, in a later write once its pods stopped, `Complete`
with `completionTime`; failing it adds `FailureTarget` then `Failed`. Objects carry the
fields a real Job has (owner CronJob, selector, pod template) so sizes and parsing costs
are realistic. Pod logs are kept per container as timestamped lines.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.testing.kube_store import RESOURCES_BY_PATH, JsonObject, KubeStore, rfc3339

JOBS = RESOURCES_BY_PATH[("batch", "v1", "jobs")]
PODS = RESOURCES_BY_PATH[("", "v1", "pods")]
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"


def job_object(
    namespace: str,
    name: str,
    *,
    cronjob: str | None = None,
    labels: Mapping[str, str] | None = None,
    start_time: datetime | None = None,
    containers: tuple[str, ...] = ("main",),
) -> JsonObject:
    uid = str(uuid.uuid4())
    selector_labels = {
        CONTROLLER_UID_LABEL: uid,
        JOB_NAME_LABEL: name,
        "controller-uid": uid,
        "job-name": name,
    }
    meta: JsonObject = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "labels": {**(labels or {}), **selector_labels},
        "annotations": {"batch.kubernetes.io/job-tracking": ""},
    }
    if cronjob is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": cronjob,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{namespace}/{cronjob}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    started = start_time or datetime.now(UTC)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 6,
            "activeDeadlineSeconds": 14400,
            "completionMode": "NonIndexed",
            "suspend": False,
            "manualSelector": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {CONTROLLER_UID_LABEL: uid}},
            "template": {
                "metadata": {"labels": {**(labels or {}), **selector_labels}},
                "spec": {
                    "containers": [_container(container) for container in containers],
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "nodeSelector": {"cloud.google.com/gke-spot": "true"},
                    "securityContext": {},
                },
            },
        },
        "status": {
            "startTime": rfc3339(started),
            "active": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        },
    }


def _container(name: str) -> JsonObject:
    return {
        "name": name,
        "image": "asia-northeast1-docker.pkg.dev/ml/batch/pipeline:2024.11.27",
        "command": ["python", "-m", "pipeline.run", "--task", name],
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"cpu": "2", "memory": "8Gi"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def pod_object(job: JsonObject, index: int) -> JsonObject:
    meta = job["metadata"]
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{uuid.uuid4().hex[:5]}",
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": dict(template["spec"]),
        "status": {
            "phase": "Running",
            "startTime": job["status"]["startTime"],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": f"{container['image']}@sha256:{'0' * 64}",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": job["status"]["startTime"]}},
                }
                for container in template["spec"]["containers"]
            ],
        },
    }


def _terminate(pod: JsonObject, phase: str, at: datetime) -> None:
    """The kubelet's view of a pod whose containers all ended (exit 0 or 1)."""
    status = pod["status"]
    status["phase"] = phase
    code = 0 if phase == "Succeeded" else 1
    for container in status.get("containerStatuses") or []:
        started = (container.get("state", {}).get("running") or {}).get("startedAt")
        container["ready"] = False
        container["state"] = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started or rfc3339(at),
                "finishedAt": rfc3339(at),
            }
        }


def _condition(kind: str, reason: str, message: str, at: datetime) -> JsonObject:
    stamp = rfc3339(at)
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


FAILURE_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "PodFailurePolicy": "Container main for pod failed with exit code 42 matching FailJob rule",
    "MaxFailedIndexesExceeded": "Job has exceeded the specified maximal number of failed indexes",
}


class JobController:
    """The hooks tests call: create/complete/fail/delete Jobs and set pod logs."""

    def __init__(self, store: KubeStore) -> None:
        self.store = store
        self._logs: dict[tuple[str, str, str], list[tuple[datetime, str]]] = {}
        self._lock = threading.Lock()

    def create_job(
        self,
        namespace: str,
        name: str,
        *,
        cronjob: str | None = None,
        labels: Mapping[str, str] | None = None,
        start_time: datetime | None = None,
        containers: tuple[str, ...] = ("main",),
        pods: int = 1,
        logs: Mapping[str, str] | None = None,
    ) -> JsonObject:
        """Create a running Job and its pods; `logs` maps container -> log text."""
        job = job_object(
            namespace,
            name,
            cronjob=cronjob,
            labels=labels,
            start_time=start_time,
            containers=containers,
        )
        stored = self.store.create(JOBS, namespace, job)
        for index in range(pods):
            pod = pod_object(stored.obj, index)
            self.store.create(PODS, namespace, pod)
            for container, text in (logs or {}).items():
                self.set_pod_log(namespace, pod["metadata"]["name"], container, text)
        return stored.obj

    def create_finished_job(
        self,
        namespace: str,
        name: str,
        *,
        cronjob: str | None = None,
        start_time: datetime,
        completed_at: datetime,
    ) -> JsonObject:
        """A Job that already completed (one ADDED event, as a relist or a new watcher
        sees a past run): its status carries both success conditions and the times."""
        job = job_object(namespace, name, cronjob=cronjob, start_time=start_time)
        self._success_criteria(job, completed_at)
        self._complete(job, completed_at - timedelta(seconds=1))
        return self.store.create(JOBS, namespace, job).obj

    @contextmanager
    def churn(self, per_second: float, namespace: str = "noise") -> Iterator[list[int]]:
        """Update one unrelated Job `per_second` times a second (an annotation: no fact
        changes) until the block ends; yields the count of writes so far, as a 1-list."""
        self.create_job(namespace, "churner")
        stop = threading.Event()
        writes = [0]

        def bump(job: JsonObject) -> None:
            job["metadata"].setdefault("annotations", {})["churn"] = str(writes[0])

        def run() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                self.store.modify(JOBS, namespace, "churner", bump)
                writes[0] += 1
                next_at += 1.0 / per_second
                stop.wait(max(0.0, next_at - time.monotonic()))

        thread = threading.Thread(target=run, name="churn", daemon=True)
        thread.start()
        try:
            yield writes
        finally:
            stop.set()
            thread.join()

    def pods_of(self, namespace: str, job_name: str) -> list[JsonObject]:
        return [
            stored.obj
            for stored in self.store.objects("pods")
            if stored.obj["metadata"].get("namespace") == namespace
            and stored.obj["metadata"].get("labels", {}).get(JOB_NAME_LABEL) == job_name
        ]

    def complete_job(
        self,
        namespace: str,
        name: str,
        *,
        at: datetime | None = None,
        early: bool = True,
        final: bool = True,
    ) -> None:
        """`SuccessCriteriaMet` (if `early`) then `Complete` + `completionTime` (if `final`)."""
        moment = at or datetime.now(UTC)
        self._finish_pods(namespace, name, "Succeeded", moment)
        if early:
            self.store.modify(
                JOBS, namespace, name, lambda job: self._success_criteria(job, moment)
            )
        if final:
            self.store.modify(JOBS, namespace, name, lambda job: self._complete(job, moment))

    @staticmethod
    def _success_criteria(job: JsonObject, moment: datetime) -> None:
        status = job.setdefault("status", {})
        status.update({"active": 0, "ready": 0, "succeeded": 1})
        status.setdefault("conditions", []).append(
            _condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                moment,
            )
        )

    @staticmethod
    def _complete(job: JsonObject, moment: datetime) -> None:
        status = job.setdefault("status", {})
        status.update({"active": 0, "ready": 0, "succeeded": 1})
        status["completionTime"] = rfc3339(moment + timedelta(seconds=1))
        status.setdefault("conditions", []).append(
            _condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                moment + timedelta(seconds=1),
            )
        )

    def fail_job(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "BackoffLimitExceeded",
        at: datetime | None = None,
        early: bool = True,
        final: bool = True,
    ) -> None:
        """`FailureTarget` (if `early`) then `Failed` (if `final`), both with `reason`."""
        moment = at or datetime.now(UTC)
        message = FAILURE_MESSAGES.get(reason, reason)
        self._finish_pods(namespace, name, "Failed", moment)

        def add(kind: str, when: datetime) -> Any:
            def change(job: JsonObject) -> None:
                status = job.setdefault("status", {})
                status.update({"active": 0, "ready": 0, "failed": 7})
                status.setdefault("conditions", []).append(_condition(kind, reason, message, when))

            return change

        if early:
            self.store.modify(JOBS, namespace, name, add("FailureTarget", moment))
        if final:
            self.store.modify(JOBS, namespace, name, add("Failed", moment + timedelta(seconds=1)))

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job (its last state rides on the DELETED event) and its pods."""
        pods = self.pods_of(namespace, name)
        self.store.delete(JOBS, namespace, name)
        for pod in pods:
            self.store.delete(PODS, namespace, pod["metadata"]["name"])

    def _finish_pods(
        self, namespace: str, job_name: str, phase: str, at: datetime | None = None
    ) -> None:
        now = at or datetime.now(UTC)
        for pod in self.pods_of(namespace, job_name):
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue

            def change(obj: JsonObject) -> None:
                _terminate(obj, phase, now)

            self.store.modify(PODS, namespace, pod["metadata"]["name"], change)

    def fail_pod(
        self, namespace: str, pod: str, *, log: Mapping[str, str] | None = None
    ) -> JsonObject:
        """One pod of a running Job fails (exit 1) and the Job starts a replacement pod,
        as with `backoffLimit` > 0; `log` (container -> text) is the failed pod's log,
        set before it terminates. Returns the replacement pod."""
        for container, text in (log or {}).items():
            self.set_pod_log(namespace, pod, container, text)
        failed = self.store.get("pods", namespace, pod).obj
        job_name = failed["metadata"]["labels"][JOB_NAME_LABEL]
        self.store.modify(
            PODS, namespace, pod, lambda obj: _terminate(obj, "Failed", datetime.now(UTC))
        )
        job = self.store.get("jobs", namespace, job_name).obj
        return self.store.create(PODS, namespace, pod_object(job, 0)).obj

    # -- pod logs --------------------------------------------------------------------
    def set_pod_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        text: str,
        *,
        start: datetime | None = None,
    ) -> None:
        """Replace a container's log; lines are stamped 1 ms apart from `start`."""
        first = start or datetime.now(UTC)
        lines = [
            (first + timedelta(milliseconds=index), line)
            for index, line in enumerate(text.splitlines())
        ]
        with self._lock:
            self._logs[(namespace, pod, container)] = lines

    def append_pod_log(
        self, namespace: str, pod: str, container: str, line: str, at: datetime
    ) -> None:
        with self._lock:
            self._logs.setdefault((namespace, pod, container), []).append((at, line))

    def pod_log(self, namespace: str, pod: str, container: str) -> list[tuple[datetime, str]]:
        with self._lock:
            return list(self._logs.get((namespace, pod, container), []))
