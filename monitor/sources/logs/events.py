"""Kubernetes Job events as GKE keeps them in Cloud Logging: a second witness of runs' ends.

GKE writes every Kubernetes Event of the cluster to the `projects/P/logs/events` log, with
the Event object as `jsonPayload`, and keeps it for the log's retention, long after the
Job itself is deleted (TTL, history limits). The three reasons that end a Job are read:
`Completed` (a success), `BackoffLimitExceeded` and `DeadlineExceeded` (failures). Each
becomes the same `JobSeen` the API would give for that end, marked `witness="events"`,
which the engine deduplicates by Job uid against what the API showed.

An Event names its Job (`involvedObject` {kind, namespace, name, uid}) but not the Job's
owner or labels, so the family is taken from the CronJob naming rule: a CronJob's Jobs are
named `<cronjob>-<digits>` (the scheduled time in minutes), so `nightly-29311200` is of
CronJob `nightly`. A `cronjob` batch is matched through that name, a `job_name` batch by
the Job's name, and a `labels` batch cannot be matched from an event at all.

The time of the end is the Event's `lastTimestamp`, else its `eventTime`, else the entry's
`timestamp` (the Event API has carried each of them in some Kubernetes version).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.config.model import CloudLoggingSettings
from monitor.core.facts import JobSeen
from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.core.tracebacks import clip
from monitor.core.witnesses import cronjob_of
from monitor.sources.logs.budget import RequestBudget
from monitor.sources.logs.client import entries_of, list_page, make_client
from monitor.sources.logs.entries import quote

logger = logging.getLogger(__name__)

#: The Event reasons that end a Job, and the outcome each stands for.
END_REASONS = {
    "Completed": "succeeded",
    "BackoffLimitExceeded": "failed",
    "DeadlineExceeded": "failed",
}
MAX_MESSAGE_CHARS = 2000


def events_filter(
    project: str,
    cluster: str | None,
    namespaces: Sequence[str],
    since: datetime,
    *,
    with_namespaces: bool = True,
) -> str:
    """The polled query: end events of the cluster's Jobs since `since`, oldest first."""
    clauses = [
        f"logName={quote(f'projects/{project}/logs/events')}",
        'resource.type="k8s_cluster"',
    ]
    if cluster:
        clauses.append(f"resource.labels.cluster_name={quote(cluster)}")
    clauses.append('jsonPayload.involvedObject.kind="Job"')
    clauses.append("jsonPayload.reason=(" + " OR ".join(map(quote, END_REASONS)) + ")")
    if with_namespaces and namespaces:
        listed = " OR ".join(map(quote, namespaces))
        clauses.append(f"jsonPayload.involvedObject.namespace=({listed})")
    clauses.append(f'timestamp>="{format_rfc3339(since)}"')
    return " AND ".join(clauses)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One end event of a Job: its entry's identity and time, and the fact it witnesses."""

    insert_id: str
    entry_time: datetime
    seen: JobSeen


class MalformedEvent(ValueError):
    """An events-log entry that is not a Job end event this reader understands."""


def parse_event(entry: Any) -> JobEvent:
    """Reduce one raw LogEntry of the events log; `MalformedEvent` when it is no Job end."""
    if not isinstance(entry, Mapping):
        raise MalformedEvent("not an object")
    insert_id = entry.get("insertId")
    if not isinstance(insert_id, str) or not insert_id:
        raise MalformedEvent("no insertId")
    entry_time = _instant(entry.get("timestamp"), "timestamp")
    payload = entry.get("jsonPayload")
    if not isinstance(payload, Mapping):
        raise MalformedEvent("no jsonPayload object")
    involved = payload.get("involvedObject")
    if not isinstance(involved, Mapping) or involved.get("kind") != "Job":
        raise MalformedEvent("involvedObject is not a Job")
    uid, namespace, name = (_text(involved, key) for key in ("uid", "namespace", "name"))
    reason = payload.get("reason")
    outcome = END_REASONS.get(reason) if isinstance(reason, str) else None
    if outcome is None:
        raise MalformedEvent(f"reason {clip(repr(reason), 60)} does not end a Job")
    assert isinstance(reason, str)
    at = _event_time(payload, entry_time)
    message = payload.get("message")
    text = clip(message, MAX_MESSAGE_CHARS) if isinstance(message, str) else None
    common: dict[str, Any] = {"cronjob": cronjob_of(name), "witness": "events"}
    if outcome == "succeeded":
        seen = JobSeen(uid, namespace, name, outcome="succeeded", completion_time=at, **common)
    else:
        seen = JobSeen(
            uid, namespace, name, outcome="failed", reason=reason, message=text, failed_at=at,
            **common,
        )  # fmt: skip
    return JobEvent(insert_id, entry_time, seen)


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"involvedObject.{key} is missing")
    return value


def _instant(value: Any, what: str) -> datetime:
    try:
        return parse_rfc3339(value if isinstance(value, str) else "")
    except ValueError as error:
        raise MalformedEvent(f"{what} is not a valid time") from error


def _event_time(payload: Mapping[str, Any], entry_time: datetime) -> datetime:
    """`lastTimestamp`, else `eventTime`, else the entry's own time."""
    for key in ("lastTimestamp", "eventTime"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return _instant(value, f"jsonPayload.{key}")
    return entry_time


def read_events(
    settings: CloudLoggingSettings,
    namespaces: Sequence[str],
    since: datetime,
    until: datetime,
    *,
    client: Any = None,
    budget: RequestBudget | None = None,
) -> Iterator[JobEvent]:
    """Every Job end event logged in [`since`, `until`], oldest first, all pages read
    within the read budget (waiting when it is spent); malformed entries are logged and
    skipped. For `backtest`, which looks back as far as the log's retention."""
    client = client if client is not None else make_client(settings)
    budget = budget or RequestBudget()
    query = events_filter(settings.project, settings.cluster, namespaces, since)
    query += f' AND timestamp<="{format_rfc3339(until)}"'
    token: str | None = None
    while True:
        while not budget.take():
            time.sleep(budget.seconds_until_free())
        page = list_page(client, settings.project, query, token)
        for raw in entries_of(page):
            try:
                event = parse_event(raw)
            except MalformedEvent as problem:
                logger.warning("skipping Job event entry (%s): %s", problem, repr(raw)[:300])
                continue
            if not namespaces or event.seen.namespace in namespaces:
                yield event
        token = page.get("nextPageToken") or None
        if token is None:
            return
