"""Raw batch/v1 Job JSON -> `JobSeen`, decided once, at the edge.

The outcome comes from conditions only. Since Kubernetes 1.31 the controller first adds
`SuccessCriteriaMet` / `FailureTarget` and only after every pod stopped the terminal
`Complete` / `Failed`; both pairs describe the same outcome, so the earliest instant of
the pair is used, computed from the object alone: every copy of a Job (watch event,
relist, after a restart) reduces to the same result and an outcome is never counted
twice with two different times. A success's instant is `completionTime` or the
`SuccessCriteriaMet` transition, whichever is earlier (both whole seconds).
Anything that is not shaped like a Job raises `MalformedJob`; callers log and skip it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.facts import JobOutcome, JobSeen

SUCCESS_CONDITIONS = ("SuccessCriteriaMet", "Complete")
FAILURE_CONDITIONS = ("FailureTarget", "Failed")


class MalformedJob(ValueError):
    """The object cannot be a Job; the message says which field is wrong."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedJob(f"{where} is not an object")
    return value


def _required(value: Any, where: str) -> str:
    text = _text(value, where)
    if text is None:
        raise MalformedJob(f"{where} is missing")
    return text


def _text(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedJob(f"{where} is not a string")
    return value


def parse_time(value: Any, where: str) -> datetime | None:
    text = _text(value, where)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise MalformedJob(f"{where} is not an RFC 3339 time: {text!r}") from error
    if moment.tzinfo is None:
        raise MalformedJob(f"{where} has no timezone: {text!r}")
    return moment


def job_key(obj: Any) -> tuple[str, str, str]:
    """(namespace, name, uid) as far as they can be read, for log lines about bad objects."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return ("?", "?", "?")
    return (str(meta.get("namespace", "?")), str(meta.get("name", "?")), str(meta.get("uid", "?")))


def _owner_cronjob(meta: Mapping[str, Any]) -> str | None:
    owners = meta.get("ownerReferences")
    if owners is None:
        return None
    if not isinstance(owners, list):
        raise MalformedJob("metadata.ownerReferences is not a list")
    found: str | None = None
    for owner in owners:
        owner = _mapping(owner, "metadata.ownerReferences[]")
        if owner.get("kind") == "CronJob":
            name = _text(owner.get("name"), "metadata.ownerReferences[].name")
            if owner.get("controller") is True:
                return name
            found = found or name
    return found


def _labels(meta: Mapping[str, Any]) -> dict[str, str]:
    labels = _mapping(meta.get("labels"), "metadata.labels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise MalformedJob(f"label {key!r} is not a string")
    return dict(labels)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def reduce_job(obj: Any) -> JobSeen:
    """The `JobSeen` for one raw Job object (e.g. `items[i]` or a watch event's object)."""
    job = _mapping(obj, "the Job")
    meta = _mapping(job.get("metadata"), "metadata")
    status = _mapping(job.get("status"), "status")
    uid = _required(meta.get("uid"), "metadata.uid")
    namespace = _required(meta.get("namespace"), "metadata.namespace")
    name = _required(meta.get("name"), "metadata.name")

    true_at: dict[str, datetime | None] = {}
    details: dict[str, tuple[str | None, str | None]] = {}
    conditions = status.get("conditions")
    if conditions is not None and not isinstance(conditions, list):
        raise MalformedJob("status.conditions is not a list")
    for raw in conditions or ():
        condition = _mapping(raw, "status.conditions[]")
        kind = condition.get("type")
        if kind not in SUCCESS_CONDITIONS and kind not in FAILURE_CONDITIONS:
            continue
        if condition.get("status") != "True":
            continue
        true_at[kind] = parse_time(
            condition.get("lastTransitionTime"), f"condition {kind} lastTransitionTime"
        )
        details[kind] = (
            _text(condition.get("reason"), f"condition {kind} reason"),
            _text(condition.get("message"), f"condition {kind} message"),
        )

    completion_time = parse_time(status.get("completionTime"), "status.completionTime")
    outcome: JobOutcome = "running"
    reason = message = None
    failed_at = None
    succeeded = [kind for kind in SUCCESS_CONDITIONS if kind in true_at]
    failed = [kind for kind in FAILURE_CONDITIONS if kind in true_at]
    success_at = _earliest(completion_time, true_at.get("SuccessCriteriaMet"))
    if succeeded and success_at is None:
        success_at = true_at.get("Complete")
    failure_at = _earliest(*(true_at[kind] for kind in failed))
    if succeeded and not (failed and failure_at and success_at and failure_at < success_at):
        outcome, completion_time = "succeeded", success_at
    elif failed:
        outcome, failed_at, completion_time = "failed", failure_at, None
        reason, message = details[failed[0]]
    return JobSeen(
        uid=uid,
        namespace=namespace,
        name=name,
        labels=_labels(meta),
        cronjob=_owner_cronjob(meta),
        start_time=parse_time(status.get("startTime"), "status.startTime"),
        completion_time=completion_time if outcome == "succeeded" else None,
        outcome=outcome,
        reason=reason,
        message=message,
        failed_at=failed_at,
    )
