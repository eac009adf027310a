"""Raw batch/v1 Job JSON -> `JobSeen`, decided once, at the edge.

The JSON is decoded into a typed projection (`decode`) that enforces the shape of
identity, labels and times; this module decides the rest from that projection.

The outcome comes from conditions only. Since Kubernetes 1.31 the controller first adds
`SuccessCriteriaMet` / `FailureTarget` and only after every pod stopped the terminal
`Complete` / `Failed`; both pairs describe the same outcome, so the earliest instant of
the pair is used, computed from the object alone: every copy of a Job (watch event,
relist, after a restart) reduces to the same result and an outcome is never counted
twice with two different times. A success's instant is `completionTime` or the
`SuccessCriteriaMet` transition, whichever is earlier (both whole seconds).
Anything that is not shaped like a Job raises `MalformedRun`; callers log and skip it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import msgspec
from msgspec import Raw

from monitor.core.facts import JobOutcome, JobSeen
from monitor.core.rfc3339 import parse_rfc3339
from monitor.sources.kube.decode import (
    DecodeError,
    JobDocument,
    JobStatus,
    ObjectMetadata,
    OwnerReference,
    decode_job,
    job_from_mapping,
)

SUCCESS_CONDITIONS = ("SuccessCriteriaMet", "Complete")
FAILURE_CONDITIONS = ("FailureTarget", "Failed")


class MalformedRun(ValueError):
    """The object cannot be a run (a Job, a Workflow); the message says which field is wrong."""


def text_field(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedRun(f"{where} is not a string")
    return value


def parse_time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time of the object, or None when absent; anything else is malformed."""
    text = text_field(value, where)
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError as error:
        raise MalformedRun(f"{where}: {error}") from error


def job_key(obj: Any) -> tuple[str, str, str]:
    """(namespace, name, uid) as far as they can be read, for log lines about bad objects."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return ("?", "?", "?")
    return (str(meta.get("namespace", "?")), str(meta.get("name", "?")), str(meta.get("uid", "?")))


def owner_named(owners: list[OwnerReference | None] | None, kind: str) -> str | None:
    """The name of the owner of `kind` (the controller's, if several), interned: the runs of
    one owner share it."""
    found: str | None = None
    for owner in owners or ():
        if owner is not None and owner.kind == kind:
            name = text_field(owner.name, "metadata.ownerReferences[].name")
            if owner.controller is True:
                return sys.intern(name) if name is not None else None
            found = found or name
    return sys.intern(found) if found is not None else None


def identity(meta: ObjectMetadata) -> tuple[str, str, str]:
    """(uid, namespace, name) of a projected object; any of them empty is malformed (the
    projection already made them str or None: only emptiness is left to check). The
    namespace is interned: a cluster has few, shared by many runs."""
    uid, namespace, name = meta.uid, meta.namespace, meta.name
    if not uid:
        raise MalformedRun("metadata.uid is missing")
    if not namespace:
        raise MalformedRun("metadata.namespace is missing")
    if not name:
        raise MalformedRun("metadata.name is missing")
    return uid, sys.intern(namespace), name


def shared_labels(labels: Mapping[str, str] | None, uid: str, name: str) -> dict[str, str]:
    """A run's labels holding one copy of each text that repeats across runs.

    Every run of a CronJob carries the same keys and most of the same values, and a Job
    names its own uid and name in four more; decoded, each is a string of its own. Keys
    and values are interned, and a value that is the run's uid or name is that string
    (measured with the interned namespace and owner: the engine's 20,000 remembered
    successes and 100,000 runs keep 13 MB less).
    """
    if not labels:
        return {}
    intern = sys.intern
    return {
        intern(key): uid if value == uid else name if value == name else intern(value)
        for key, value in labels.items()
    }


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def reduce_job(obj: Any) -> JobSeen:
    """The `JobSeen` for one parsed Job object (a dict, as from `json.loads`)."""
    try:
        document = job_from_mapping(obj)
    except DecodeError as error:
        raise MalformedRun(str(error)) from error
    return reduce_document(document)


def reduce_raw(raw: bytes | Raw) -> JobSeen:
    """The `JobSeen` for one Job's JSON (a list item or a watch event's object)."""
    try:
        document = decode_job(raw)
    except DecodeError as error:
        raise MalformedRun(str(error)) from error
    return reduce_document(document)


def reduce_document(job: JobDocument) -> JobSeen:
    """The `JobSeen` for one projected Job."""
    meta = job.metadata or _NO_METADATA
    status = job.status or _NO_STATUS
    uid, namespace, name = identity(meta)
    completion_time = (
        parse_time(status.completion_time, "status.completionTime")
        if status.completion_time
        else None
    )
    outcome: JobOutcome = "running"
    reason = message = None
    failed_at = None
    if status.conditions:
        true_at: dict[str, datetime | None] = {}
        details: dict[str, tuple[str | None, str | None]] = {}
        for condition in status.conditions:
            if condition is None:
                continue
            kind = condition.type
            if kind not in SUCCESS_CONDITIONS and kind not in FAILURE_CONDITIONS:
                continue
            if condition.status != "True":
                continue
            true_at[kind] = parse_time(
                condition.last_transition_time, f"condition {kind} lastTransitionTime"
            )
            details[kind] = (
                text_field(condition.reason, f"condition {kind} reason"),
                text_field(condition.message, f"condition {kind} message"),
            )
        succeeded = [kind for kind in SUCCESS_CONDITIONS if kind in true_at]
        failed = [kind for kind in FAILURE_CONDITIONS if kind in true_at]
        success_at = _earliest(completion_time, true_at.get("SuccessCriteriaMet"))
        if succeeded and success_at is None:
            success_at = true_at.get("Complete")
        failure_at = _earliest(*(true_at[kind] for kind in failed))
        if succeeded and not (failed and failure_at and success_at and failure_at < success_at):
            outcome, completion_time = "succeeded", success_at
        elif failed:
            outcome, failed_at = "failed", failure_at
            reason, message = details[failed[0]]
    return JobSeen(
        uid=uid,
        namespace=namespace,
        name=name,
        labels=shared_labels(meta.labels, uid, name),
        cronjob=owner_named(meta.owner_references, "CronJob") if meta.owner_references else None,
        start_time=(
            parse_time(status.start_time, "status.startTime") if status.start_time else None
        ),
        completion_time=completion_time if outcome == "succeeded" else None,
        outcome=outcome,
        reason=reason,
        message=message,
        failed_at=failed_at,
        created_at=(
            parse_time(meta.creation_timestamp, "metadata.creationTimestamp")
            if meta.creation_timestamp
            else None
        ),
    )


class JobEnd(msgspec.Struct, frozen=True, gc=False):
    """A run's decided outcome other than a plain success: what a reflector keeps of a
    delivered failed run (no cycles are possible among these immutable values, hence
    `gc=False`: no GC header). A success is kept as its completion time alone."""

    outcome: JobOutcome
    completion_time: datetime | None
    reason: str | None
    message: str | None
    failed_at: datetime | None


#: What a reflector keeps of a run that ended: most of a cluster's runs succeeded, and a
#: success is its completion time alone (the very datetime the run holds, so it costs
#: nothing: a `JobEnd` each was 5 MB of 100,000 Jobs).
Ended = JobEnd | datetime


def settle_job(kept: Ended | None, seen: JobSeen) -> tuple[JobSeen, Ended | None]:
    """A decided outcome never changes: later copies keep the first outcome and its time
    (a Job's conditions can gain a contradicting entry; the first decision stands).

    `kept` is what this returned for the copy delivered before (None at first, and while
    the run was running); returns the copy to deliver and what to keep of it.
    """
    if isinstance(kept, datetime):
        success = replace(
            seen,
            outcome="succeeded",
            completion_time=kept,
            reason=None,
            message=None,
            failed_at=None,
        )
        return success, kept
    if kept is not None:
        settled = replace(
            seen,
            outcome=kept.outcome,
            completion_time=kept.completion_time,
            reason=kept.reason,
            message=kept.message,
            failed_at=kept.failed_at,
        )
        return settled, kept
    if seen.outcome == "running":
        return seen, None
    plain = seen.reason is None and seen.message is None and seen.failed_at is None
    if seen.outcome == "succeeded" and seen.completion_time is not None and plain:
        return seen, seen.completion_time
    end = JobEnd(seen.outcome, seen.completion_time, seen.reason, seen.message, seen.failed_at)
    return seen, end


_NO_METADATA = ObjectMetadata()
_NO_STATUS = JobStatus()
