"""Job pods as the reflector sees them: which Job controls each, which containers ended.

Pods are watched (label `batch.kubernetes.io/job-name`) only so that a container's log is
read as soon as it terminates. A pod's Job is its controller owner reference of kind Job
(batch/*), and only if the job-name label, when present, agrees: a label alone proves
nothing — anyone may label a bare pod with another batch's Job name — and the owner's
uid is kept so the pipeline can check it against the Job it knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from monitor.sources.kube.decode import ListMetadata, ObjectMetadata, OwnerReference
from monitor.sources.kube.reduce import MalformedRun, parse_time, text_field
from monitor.sources.kube.resources import WatchedResource, codec_of

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"


@dataclass(frozen=True, slots=True)
class PodSeen:
    """One Job pod: its controlling Job (name, uid) and its terminated containers."""

    uid: str
    namespace: str
    name: str
    job: str | None
    job_uid: str | None
    terminated: tuple[str, ...]  # containers whose current state is `terminated`
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: When each terminated container finished (`state.terminated.finishedAt`), if known.
    finished: Mapping[str, datetime] = field(default_factory=dict, hash=False)


class Terminated(msgspec.Struct, rename="camel", gc=False):
    finished_at: Any = None


class ContainerState(msgspec.Struct, gc=False):
    terminated: Terminated | None = None


class ContainerStatus(msgspec.Struct, gc=False):
    name: Any = None
    state: ContainerState | None = None


class PodStatus(msgspec.Struct, rename="camel", gc=False):
    container_statuses: list[ContainerStatus | None] | None = None
    init_container_statuses: list[ContainerStatus | None] | None = None


class PodDocument(msgspec.Struct, gc=False):
    metadata: ObjectMetadata | None = None
    status: PodStatus | None = None


class PodPage(msgspec.Struct, gc=False):
    metadata: ListMetadata | None = None
    items: list[PodDocument] | None = None


class PodEvent(msgspec.Struct, gc=False):
    type: str
    object: PodDocument


def controlling_job(
    owners: list[OwnerReference | None] | None, labels: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(name, uid) of the Job that controls the pod, or (None, None) (see the module)."""
    named = labels.get(JOB_NAME_LABEL) or labels.get(LEGACY_JOB_NAME_LABEL)
    for owner in owners or ():
        if owner is None or owner.controller is not True or owner.kind != "Job":
            continue
        if not str(owner.api_version or "").startswith("batch/"):
            continue
        job = owner.name
        if isinstance(job, str) and job and (named is None or named == job):
            uid = owner.uid if isinstance(owner.uid, str) and owner.uid else None
            return job, uid
    return None, None


def reduce_pod(pod: PodDocument) -> PodSeen:
    meta = pod.metadata or ObjectMetadata()
    uid, namespace, name = meta.uid, meta.namespace, meta.name
    if not uid or not namespace or not name:
        raise MalformedRun("metadata.uid, namespace or name is missing")
    labels = meta.labels if meta.labels is not None else {}
    job, job_uid = controlling_job(meta.owner_references, labels)
    terminated: list[str] = []
    finished: dict[str, datetime] = {}
    status = pod.status or PodStatus()
    for statuses in (status.init_container_statuses, status.container_statuses):
        for container in statuses or ():
            if container is None or container.state is None or container.state.terminated is None:
                continue
            container_name = text_field(container.name, "status.containerStatuses[].name")
            if container_name is not None:
                terminated.append(container_name)
                ended = parse_time(container.state.terminated.finished_at, "finishedAt")
                if ended is not None:
                    finished[container_name] = ended
    return PodSeen(uid, namespace, name, job, job_uid, tuple(terminated), labels, finished)


JOB_PODS: WatchedResource[PodSeen] = WatchedResource(
    noun="pod",
    group="",
    version="v1",
    plural="pods",
    codec=codec_of(PodDocument, PodPage, PodEvent, reduce_pod),
    label_selector=JOB_NAME_LABEL,
)
