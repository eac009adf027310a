"""Pod-logs fallback: tracebacks from finished Job pods, read through the Kubernetes API.

For clusters without Cloud Logging (EKS, kind, on-prem), `kubernetes.pod_logs: true`.
Each poll lists the Job pods (label `batch.kubernetes.io/job-name`) of the watched
namespaces as raw JSON; every pod that reached phase Succeeded or Failed and was not
scanned before has each container's log read once (`timestamps=true`, the last
`MAX_TAIL_LINES` lines, at most `max_bytes`) and run through the same traceback grouper
as Cloud Logging. Facts carry the same identity (namespace, pod, container, time of the
`Traceback` line). Pods already finished at the very first start are only remembered,
not scanned, so a first start does not alert old tracebacks; `cursor()` keeps the
scanned pod UIDs so a restart does not scan them again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from monitor.core.facts import Fact, TracebackSeen
from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.core.tracebacks import LogLine, find_tracebacks
from monitor.sources.base import PollLoop

logger = logging.getLogger(__name__)

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
MAX_TAIL_LINES = 5_000
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_REMEMBERED_PODS = 20_000
REQUEST_TIMEOUT_SECONDS = 30.0


def timestamped_lines(raw: bytes) -> Iterator[LogLine]:
    """Lines of a `timestamps=true` log; a line without a stamp keeps the previous time.

    Lines are split on `\n` only, as the kubelet does: `str.splitlines` also splits on
    `\x1c`, `\u2028` and others, which would let a container forge a timestamped line.
    """
    last_time: datetime | None = None
    for text in raw.decode("utf-8", "replace").removesuffix("\n").split("\n"):
        text = text.removesuffix("\r")
        stamp, _, rest = text.partition(" ")
        try:
            last_time = parse_rfc3339(stamp)
        except ValueError:
            rest = text
        if last_time is not None:
            yield LogLine(last_time, rest)


def controlling_job(metadata: Mapping[str, Any]) -> str | None:
    """The Job a pod belongs to: its controller owner of kind Job, when the job-name label
    agrees. A label alone proves nothing — anyone may label a bare pod with another batch's
    Job name — so a pod without that owner belongs to no Job (its tracebacks are unmatched).
    """
    labels = metadata.get("labels") or {}
    named = labels.get(JOB_NAME_LABEL) or labels.get(LEGACY_JOB_NAME_LABEL)
    for owner in metadata.get("ownerReferences") or []:
        if not isinstance(owner, Mapping) or not owner.get("controller"):
            continue
        if owner.get("kind") == "Job" and str(owner.get("apiVersion", "")).startswith("batch/"):
            job = owner.get("name")
            if isinstance(job, str) and job and (named is None or named == job):
                return job
    return None


class PodLogSource:
    """Polls finished Job pods and scans each container's log once for tracebacks."""

    def __init__(
        self,
        api_client: ApiClient,
        namespaces: Sequence[str],
        emit: Callable[[Fact], None],
        *,
        poll_interval: timedelta = timedelta(seconds=15),
        max_bytes: int = DEFAULT_MAX_BYTES,
        cursor: Mapping[str, Any] | None = None,
    ) -> None:
        self._core = CoreV1Api(api_client)
        self.namespaces = tuple(namespaces)
        self._emit = emit
        self.poll_interval = poll_interval
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._scanned: dict[str, str] = {}  # pod uid -> when it was seen finished
        self._baseline_done = False
        self._loop = PollLoop(self.poll_once, "pod-logs", poll_interval.total_seconds())
        if cursor:
            self.restore(cursor)

    def cursor(self) -> dict[str, Any]:
        with self._lock:
            return {"version": 1, "scanned": dict(self._scanned)}

    def restore(self, saved: Mapping[str, Any]) -> None:
        try:
            scanned = {str(uid): str(at) for uid, at in dict(saved["scanned"]).items()}
        except (KeyError, TypeError, ValueError) as error:
            logger.warning("ignoring unreadable pod-log cursor: %s", error)
            return
        with self._lock:
            self._scanned = scanned
            self._baseline_done = True

    def poll_once(self) -> float:
        """Scan newly finished pods; seconds until the next poll is due."""
        with self._lock:
            try:
                pods = list(self._finished_pods())
            except Exception as error:
                logger.warning("listing Job pods failed: %s", error)
                return self.poll_interval.total_seconds()
            now = format_rfc3339(datetime.now(UTC))
            for pod in pods:
                uid = pod["metadata"]["uid"]
                if uid in self._scanned:
                    continue
                if self._baseline_done:
                    self._scan(pod)
                self._scanned[uid] = now
            self._baseline_done = True
            if len(self._scanned) > MAX_REMEMBERED_PODS:
                newest = sorted(self._scanned.items(), key=lambda item: item[1])
                self._scanned = dict(newest[-MAX_REMEMBERED_PODS:])
        return self.poll_interval.total_seconds()

    def start(self) -> None:
        """Poll on a daemon thread until `stop()`."""
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)

    def _list_raw(self, namespace: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {
            "label_selector": JOB_NAME_LABEL,
            "_preload_content": False,
            "_request_timeout": REQUEST_TIMEOUT_SECONDS,
        }
        response: Any  # raw urllib3 response (`_preload_content=False`)
        if namespace is None:
            response = self._core.list_pod_for_all_namespaces(**kwargs)
        else:
            response = self._core.list_namespaced_pod(namespace, **kwargs)
        items = json.loads(response.data).get("items")
        return items if isinstance(items, list) else []

    def _finished_pods(self) -> Iterator[dict[str, Any]]:
        scopes: Sequence[str | None] = self.namespaces or (None,)
        for namespace in scopes:
            for pod in self._list_raw(namespace):
                try:
                    phase = pod["status"]["phase"]
                    if not isinstance(pod["metadata"]["uid"], str):
                        raise TypeError("uid is not a string")
                except (KeyError, TypeError):
                    logger.warning("skipping malformed pod object: %.300r", pod)
                    continue
                if phase in FINISHED_PHASES:
                    yield pod

    def _scan(self, pod: Mapping[str, Any]) -> None:
        metadata = pod["metadata"]
        namespace, name = metadata.get("namespace"), metadata.get("name")
        labels = metadata.get("labels") or {}
        job = controlling_job(metadata)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        for container in containers:
            if not isinstance(container, str):
                continue
            try:
                response: Any = self._core.read_namespaced_pod_log(
                    name,
                    namespace,
                    container=container,
                    timestamps=True,
                    tail_lines=MAX_TAIL_LINES,
                    limit_bytes=self.max_bytes,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                )
                raw: bytes = response.data
            except Exception as error:
                logger.warning(
                    "reading log of %s/%s[%s] failed: %s", namespace, name, container, error
                )
                continue
            for traceback in find_tracebacks(timestamped_lines(raw[: self.max_bytes])):
                self._emit(
                    TracebackSeen(
                        namespace=namespace,
                        pod=name,
                        container=container,
                        job=job,
                        time=traceback.time,
                        first_line=traceback.first_line,
                        final_line=traceback.final_line,
                        labels={str(k): str(v) for k, v in labels.items()},
                    )
                )
