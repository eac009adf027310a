"""A loopback fake of the Cloud Logging REST API: `POST /v2/entries:list`.

It speaks the wire protocol `google-cloud-logging` uses over REST (`resourceNames`,
`filter`, `orderBy`, `pageSize`, `pageToken` in; `entries`, `nextPageToken` out) and
evaluates filters with `logging_filter`, answering 400 INVALID_ARGUMENT in the API's
error shape for anything it does not understand. Tests and `sla-monitor demo` add entries
(`add`, `container_entry`), make entries arrive late simply by adding them later, inject
429 RESOURCE_EXHAUSTED (no Retry-After, like the real quota) or 5xx, and inspect the
requests received.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.testing.logging_filter import FilterError, compile_filter

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
_ORDERINGS = {"": False, "timestamp asc": False, "timestamp desc": True}
_ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
    "of service 'logging.googleapis.com' for consumer 'project_number:000000000000'."
)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One `entries:list` call as the fake saw it (body already decoded)."""

    at: float
    body: Mapping[str, Any]
    status: int

    @property
    def filter(self) -> str:
        return str(self.body.get("filter", ""))


def error_body(code: int, message: str) -> dict[str, Any]:
    """The google.rpc.Status JSON the real API wraps every error in."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": _ERROR_STATUS.get(code, "UNKNOWN"),
    }
    if code == 429:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "logging.googleapis.com",
                    "quota_metric": "logging.googleapis.com/read_requests",
                },
            }
        ]
    return {"error": error}


_insert_ids = count(1)


def container_entry(
    *,
    namespace: str,
    pod: str,
    text: str,
    timestamp: datetime,
    container: str = "main",
    cluster: str = "test-cluster",
    project: str = "test-project",
    job: str | None = None,
    job_uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    json_message: bool = False,
    insert_id: str | None = None,
) -> dict[str, Any]:
    """A LogEntry shaped like the ones GKE writes for a container's stdout/stderr line.

    `job` and `job_uid` set the pod labels GKE copies into `labels` (`k8s-pod/job-name`
    and `k8s-pod/controller-uid`, and their `batch.kubernetes.io/` twins with dots as
    underscores); `json_message` puts `text` in `jsonPayload.message` instead of
    `textPayload`.
    """
    entry_labels = {f"k8s-pod/{key}": value for key, value in (labels or {}).items()}
    if job is not None:
        entry_labels["k8s-pod/job-name"] = job
        entry_labels["k8s-pod/batch_kubernetes_io/job-name"] = job
    if job_uid is not None:
        entry_labels["k8s-pod/controller-uid"] = job_uid
        entry_labels["k8s-pod/batch_kubernetes_io/controller-uid"] = job_uid
    stamp = format_rfc3339(timestamp)
    entry: dict[str, Any] = {
        "insertId": insert_id or f"fake-{next(_insert_ids):08d}",
        "logName": f"projects/{project}/logs/stderr",
        "resource": {
            "type": "k8s_container",
            "labels": {
                "project_id": project,
                "location": "asia-northeast1",
                "cluster_name": cluster,
                "namespace_name": namespace,
                "pod_name": pod,
                "container_name": container,
            },
        },
        "timestamp": stamp,
        "receiveTimestamp": stamp,
        "severity": "ERROR",
        "labels": entry_labels,
    }
    if json_message:
        entry["jsonPayload"] = {"message": text}
    else:
        entry["textPayload"] = text
    return entry


#: What the job controller says with each end reason (kubernetes/pkg/controller/job).
JOB_EVENT_MESSAGES = {
    "Completed": ("Normal", "Job completed"),
    "BackoffLimitExceeded": ("Warning", "Job has reached the specified backoff limit"),
    "DeadlineExceeded": ("Warning", "Job was active longer than specified deadline"),
}


def job_event_entry(
    *,
    namespace: str,
    job: str,
    uid: str,
    reason: str,
    at: datetime,
    logged_at: datetime | None = None,
    cluster: str = "test-cluster",
    project: str = "test-project",
    time_field: str = "lastTimestamp",
    insert_id: str | None = None,
) -> dict[str, Any]:
    """A LogEntry shaped like the ones GKE writes to `logs/events` for a Job's Event.

    `at` is the Event's time, in `time_field` (`lastTimestamp`, as the core/v1 Event API
    writes it, or `eventTime`, as events.k8s.io/v1 does; any other value: neither, so the
    entry's own `timestamp` is the only time); `logged_at` is the entry's `timestamp`
    (default `at`).
    """
    event_type, message = JOB_EVENT_MESSAGES.get(reason, ("Normal", reason))
    stamp, logged = format_rfc3339(at), format_rfc3339(logged_at or at)
    payload: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{job}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": stamp,
        },
        "involvedObject": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": namespace,
            "name": job,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "source": {"component": "job-controller"},
        "reportingComponent": "job-controller",
        "type": event_type,
        "count": 1,
    }
    if time_field in ("lastTimestamp", "eventTime"):
        payload[time_field] = stamp
        if time_field == "lastTimestamp":
            payload["firstTimestamp"] = stamp
    return {
        "insertId": insert_id or f"fake-event-{next(_insert_ids):08d}",
        "logName": f"projects/{project}/logs/events",
        "resource": {
            "type": "k8s_cluster",
            "labels": {
                "project_id": project,
                "location": "asia-northeast1",
                "cluster_name": cluster,
            },
        },
        "timestamp": logged,
        "receiveTimestamp": logged,
        "severity": "WARNING" if event_type == "Warning" else "INFO",
        "jsonPayload": payload,
    }


def _sort_key(entry: Mapping[str, Any]) -> tuple[float, str]:
    try:
        stamp = parse_rfc3339(entry.get("timestamp", ""), bounded=False).timestamp()
    except (ValueError, TypeError):
        stamp = float("-inf")
    return stamp, str(entry.get("insertId", ""))


def _entry_project(entry: Mapping[str, Any]) -> str | None:
    log_name = entry.get("logName")
    if isinstance(log_name, str) and log_name.startswith("projects/"):
        return log_name.split("/")[1]
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, Mapping) else None
    project = labels.get("project_id") if isinstance(labels, Mapping) else None
    return project if isinstance(project, str) else None


class FakeCloudLogging:
    """The fake API server; `with FakeCloudLogging() as api: api.url ...`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._faults: list[int] = []
        self._requests: list[ReceivedRequest] = []
        self.quota_per_minute: int | None = None
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-cloud-logging",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeCloudLogging:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeCloudLogging:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, *entries: Mapping[str, Any]) -> None:
        """Make entries visible from now on (adding later = arriving late)."""
        with self._lock:
            self._entries.extend(dict(entry) for entry in entries)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` list calls with `status` (429, 500, 503, ...)."""
        with self._lock:
            self._faults.extend([status] * times)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, body: Mapping[str, Any], status: int) -> None:
        with self._lock:
            self._requests.append(ReceivedRequest(time.monotonic(), body, status))

    def _over_quota(self) -> bool:
        if self.quota_per_minute is None:
            return False
        now = time.monotonic()
        with self._lock:
            recent = [r for r in self._requests if now - r.at < 60 and r.status != 429]
        return len(recent) >= self.quota_per_minute

    def list_entries(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one `entries:list` body: (HTTP status, JSON response)."""
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            message = _QUOTA_MESSAGE if fault == 429 else "Internal error encountered."
            return fault, error_body(fault, message)
        if self._over_quota():
            return 429, error_body(429, _QUOTA_MESSAGE)
        try:
            return 200, self._page(body)
        except FilterError as error:
            return 400, error_body(400, f"Invalid filter: {error}")

    def _page(self, body: Mapping[str, Any]) -> dict[str, Any]:
        projects = self._projects(body.get("resourceNames"))
        query = body.get("filter", "")
        if not isinstance(query, str):
            raise FilterError("filter must be a string")
        predicate = compile_filter(query)
        order = body.get("orderBy", "")
        if order not in _ORDERINGS:
            raise FilterError(f"invalid orderBy {order!r}: use 'timestamp asc' or 'timestamp desc'")
        page_size = body.get("pageSize", DEFAULT_PAGE_SIZE)
        if not isinstance(page_size, int) or not 0 < page_size <= MAX_PAGE_SIZE:
            raise FilterError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        fingerprint = f"{hash((tuple(projects), query, order)) & 0xFFFFFFFF:08x}"
        offset = self._offset(body.get("pageToken"), fingerprint)
        with self._lock:
            snapshot = list(self._entries)
        matching = [
            entry for entry in snapshot if _entry_project(entry) in projects and predicate(entry)
        ]
        matching.sort(key=_sort_key, reverse=_ORDERINGS[order])
        page = matching[offset : offset + page_size]
        response: dict[str, Any] = {"entries": page} if page else {}
        if offset + page_size < len(matching):
            response["nextPageToken"] = f"{fingerprint}:{offset + page_size}"
        return response

    @staticmethod
    def _projects(names: Any) -> list[str]:
        if not isinstance(names, list) or not names:
            raise FilterError("resourceNames must list at least one resource")
        projects = []
        for name in names:
            if not isinstance(name, str) or not name.startswith("projects/"):
                raise FilterError(f"unsupported resource name {name!r}")
            projects.append(name.split("/", 1)[1])
        return projects

    @staticmethod
    def _offset(token: Any, fingerprint: str) -> int:
        if not token:
            return 0
        prefix, _, offset = str(token).partition(":")
        if prefix != fingerprint or not offset.isdigit():
            raise FilterError("invalid page token (it belongs to another query)")
        return int(offset)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.split("?")[0] != "/v2/entries:list":
                    self._send(404, error_body(404, f"no such method {self.path}"))
                    return
                try:
                    body = json.loads(raw or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("body is not a JSON object")
                except ValueError as error:
                    fake._record({}, 400)
                    self._send(400, error_body(400, f"Invalid JSON payload: {error}"))
                    return
                status, response = fake.list_entries(body)
                fake._record(body, status)
                self._send(status, response)

            def _send(self, status: int, payload: Mapping[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status, HTTPStatus(status).phrase)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet; the fake records requests instead."""

        return Handler
