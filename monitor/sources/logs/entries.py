"""Cloud Logging's side of traceback detection: the filters we send, the entries we get.

`traceback_filter` is the one server-side query the source polls (GKE container logs of
the configured cluster and namespaces whose text or JSON message has a `Traceback` line);
`follow_up_filter` fetches the lines after such a line in the same containers, because
GKE writes one entry per stdout line. Both are always bounded by `timestamp` (the client
library would otherwise append `now-24h` silently). `parse_entry` reduces a raw LogEntry
dict to a `ContainerLine`; a malformed entry is logged and yields None, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.core.tracebacks import MAX_MESSAGE_CHARS, TRACEBACK_MARKER, clip

logger = logging.getLogger(__name__)

MAX_FILTER_CHARS = 20_000  # the API's cap on a filter
POD_LABEL_PREFIX = "k8s-pod/"
JOB_NAME_LABELS = ("k8s-pod/batch_kubernetes_io/job-name", "k8s-pod/job-name")
#: The Job's uid, as the pod labels copied by GKE state it (dots of keys as underscores).
CONTROLLER_UID_LABELS = ("batch_kubernetes_io/controller-uid", "controller-uid")


def controller_uid(pod_labels: Mapping[str, str]) -> str | None:
    """The uid of the Job a pod's labels name (`pod_labels` without GKE's prefix)."""
    return next((pod_labels[key] for key in CONTROLLER_UID_LABELS if key in pod_labels), None)


ContainerKey = tuple[str, str, str]  # namespace, pod, container


@dataclass(frozen=True, slots=True)
class ContainerLine:
    """One GKE container log entry, reduced to what traceback detection needs."""

    insert_id: str
    time: datetime
    namespace: str
    pod: str
    container: str
    text: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> ContainerKey:
        return (self.namespace, self.pod, self.container)

    @property
    def job_label(self) -> str | None:
        """The Job name from the pod labels GKE copies into the entry, if any."""
        return next((self.labels[name] for name in JOB_NAME_LABELS if name in self.labels), None)

    @property
    def pod_labels(self) -> dict[str, str]:
        """Pod labels without GKE's prefix (GKE writes the dots of keys as underscores)."""
        return {
            key[len(POD_LABEL_PREFIX) :]: value
            for key, value in self.labels.items()
            if key.startswith(POD_LABEL_PREFIX)
        }


def quote(value: str) -> str:
    """A filter-language string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resource_clauses(cluster: str | None) -> list[str]:
    clauses = ['resource.type="k8s_container"']
    if cluster:
        clauses.append(f"resource.labels.cluster_name={quote(cluster)}")
    return clauses


def namespace_clause(namespaces: Sequence[str]) -> str | None:
    if not namespaces:
        return None
    return "resource.labels.namespace_name=(" + " OR ".join(map(quote, namespaces)) + ")"


def traceback_filter(
    cluster: str | None, namespaces: Sequence[str], since: datetime, *, with_namespaces: bool
) -> str:
    """The polled query: traceback lines of the cluster's containers since `since`."""
    marker = quote(TRACEBACK_MARKER.rstrip(":"))
    clauses = _resource_clauses(cluster)
    if with_namespaces and (namespaces_only := namespace_clause(namespaces)):
        clauses.append(namespaces_only)
    clauses.append(f"(textPayload:{marker} OR jsonPayload.message:{marker})")
    clauses.append(f'timestamp>="{format_rfc3339(since)}"')
    return " AND ".join(clauses)


def follow_up_filter(
    cluster: str | None, starts: Iterable[tuple[ContainerKey, datetime]], until: datetime
) -> str:
    """Lines of the given containers from each start time on, up to `until`."""
    groups = [
        "("
        + " AND ".join(
            (
                f"resource.labels.namespace_name={quote(namespace)}",
                f"resource.labels.pod_name={quote(pod)}",
                f"resource.labels.container_name={quote(container)}",
                f'timestamp>="{format_rfc3339(start)}"',
            )
        )
        + ")"
        for (namespace, pod, container), start in starts
    ]
    clauses = [*_resource_clauses(cluster), "(" + " OR ".join(groups) + ")"]
    clauses.append(f'timestamp<="{format_rfc3339(until)}"')
    return " AND ".join(clauses)


def _text_of(entry: Mapping[str, Any]) -> str | None:
    if "textPayload" in entry:
        text = entry["textPayload"]
    else:
        payload = entry.get("jsonPayload")
        text = payload.get("message") if isinstance(payload, Mapping) else None
    if not isinstance(text, str):
        return None
    # Bound memory first, then make the text safe to re-encode (lone surrogates etc.).
    return text[:MAX_MESSAGE_CHARS].encode("utf-8", "replace").decode("utf-8")


def _string_labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): item for key, item in value.items() if isinstance(item, str)}


def parse_entry(entry: Any) -> ContainerLine | None:
    """Reduce one raw LogEntry; log and return None when a needed field is missing."""
    problem = _parse_problem(entry)
    if problem is not None:
        logger.warning("skipping malformed log entry (%s): %s", problem, clip(repr(entry), 300))
        return None
    resource_labels = entry["resource"]["labels"]
    text = _text_of(entry)
    assert text is not None
    return ContainerLine(
        insert_id=entry["insertId"],
        time=parse_rfc3339(entry["timestamp"]),
        namespace=resource_labels["namespace_name"],
        pod=resource_labels["pod_name"],
        container=resource_labels["container_name"],
        text=text,
        labels=_string_labels(entry.get("labels")),
    )


def _parse_problem(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return "not an object"
    if not isinstance(entry.get("insertId"), str) or not entry["insertId"]:
        return "no insertId"
    stamp = entry.get("timestamp")
    try:
        parse_rfc3339(stamp if isinstance(stamp, str) else "")
    except ValueError:
        return "no valid timestamp"
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, Mapping) else None
    if not isinstance(labels, Mapping):
        return "no resource labels"
    for name in ("namespace_name", "pod_name", "container_name"):
        if not isinstance(labels.get(name), str) or not labels[name]:
            return f"no resource.labels.{name}"
    if _text_of(entry) is None:
        return "no textPayload or jsonPayload.message string"
    return None
