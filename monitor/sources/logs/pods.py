"""Pod-logs source: tracebacks from Job pods' logs, read through the Kubernetes API.

For clusters without Cloud Logging (EKS, kind, on-prem), `kubernetes.pod_logs: true`.
Job pods (label `batch.kubernetes.io/job-name`) of the watched namespaces are listed and
watched by the shared reflector (`sources.kube`, resource `JOB_PODS`); as soon as a
container's state is `terminated` — a pod that failed while its Job retries included —
its log is read once (`timestamps=true`, the last `MAX_TAIL_LINES` lines, at most
`max_bytes`) on a reader thread and run through the same traceback grouper as Cloud
Logging. Facts carry the same identity (namespace, pod, container, time of the
`Traceback` line) and the controlling Job's name and uid (`sources.kube.pods`).

Containers that had already terminated before a first start (`finishedAt` earlier) are
only remembered, not read, so a first start does not alert old tracebacks; `cursor()`
keeps the read containers so a restart reads only those that ended meanwhile.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from monitor.core.facts import Fact, TracebackSeen
from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.core.tracebacks import LogLine, find_tracebacks
from monitor.sources.base import Backoff, supervised
from monitor.sources.kube.pods import JOB_PODS, PodSeen
from monitor.sources.kube.reflector import Reflector, ReflectorSettings, reader_threads

logger = logging.getLogger(__name__)

MAX_TAIL_LINES = 5_000
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_REMEMBERED_CONTAINERS = 20_000
REQUEST_TIMEOUT_SECONDS = 30.0
#: finishedAt is stamped to the second by the kubelet's clock.
STARTUP_SLACK = timedelta(seconds=2)


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


def parse_pod_cursor(saved: Mapping[str, Any]) -> dict[str, str]:
    """The containers already read ("<pod uid>/<container>" or a version-1 pod uid -> when),
    from `PodLogSource.cursor()` output; raises on anything else."""
    scanned = saved["scanned"]
    if not isinstance(scanned, Mapping):
        raise TypeError(f"scanned is a {type(scanned).__name__}, not a mapping")
    return {str(key): str(at) for key, at in scanned.items()}


class PodLogSource:
    """Watches Job pods and reads each terminated container's log once, for tracebacks."""

    def __init__(
        self,
        api_client: ApiClient,
        namespaces: Sequence[str],
        emit: Callable[[Fact], None],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        cursor: Mapping[str, Any] | None = None,
        settings: ReflectorSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self._core = CoreV1Api(api_client)
        self.namespaces = tuple(namespaces)
        self._emit = emit
        self.max_bytes = max_bytes
        self._settings = settings or ReflectorSettings()
        self._rng = rng or random.Random()
        self._stopped = threading.Event()
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self._reflectors = [
            Reflector(api_client, JOB_PODS, scope, self, self._settings, self._stopped, self._rng)
            for scope in scopes
        ]
        self._reads: queue.SimpleQueue[tuple[PodSeen, str] | None] = queue.SimpleQueue()
        self._scanned: dict[str, str] = {}  # "<pod uid>/<container>" -> when it was read
        self._queued: set[str] = set()
        self._baseline_done = False  # a restored cursor: nothing found is old news
        # A first start ignores containers that ended before it; one that ended since (the
        # first list can be a moment late) is read like any other.
        self._started_at = datetime.now(UTC) - STARTUP_SLACK
        self._threads: list[threading.Thread] = []
        self._reachable: bool | None = None
        if cursor:
            self.restore(cursor)

    # -- state -----------------------------------------------------------------------
    def cursor(self) -> dict[str, Any]:
        with self.lock:
            return {"version": 2, "scanned": dict(self._scanned)}

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Version 1 kept pod uids (every container of the pod was read), version 2 keeps
        `<pod uid>/<container>`; both are understood."""
        try:
            scanned = parse_pod_cursor(saved)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            logger.warning("ignoring unreadable pod-log cursor: %s", error)
            return
        with self.lock:
            self._scanned = scanned
            self._baseline_done = True

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> PodLogSource:
        self._threads = reader_threads(
            self._reflectors, self._stopped, self._crashed, self._settings, self._rng
        )
        reader = supervised(
            self._read_loop, "pod log reader", self._stopped, on_crash=_ignore, backoff=Backoff()
        )
        self._threads.append(threading.Thread(target=reader, name="pod-logs", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._reads.put(None)
        for reflector in self._reflectors:
            reflector.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def synced(self) -> bool:
        return all(reflector.synced for reflector in self._reflectors)

    @property
    def skipped(self) -> int:
        """Malformed pods skipped, for metrics."""
        return sum(reflector.skipped for reflector in self._reflectors)

    @property
    def idle(self) -> bool:
        """Every terminated container seen so far has been read (for tests and stop)."""
        with self.lock:
            return not self._queued

    # -- what reflectors call (ReflectorSink) -------------------------------------------
    def emit(self, item: PodSeen) -> None:
        with self.lock:
            now = format_rfc3339(datetime.now(UTC))
            first_list = not self._baseline_done and not self._listed(item.namespace)
            for container in item.terminated:
                key = f"{item.uid}/{container}"
                if key in self._scanned or key in self._queued or item.uid in self._scanned:
                    continue
                ended = item.finished.get(container)
                if first_list and (ended is None or ended < self._started_at):
                    self._remember(key, now)
                else:
                    self._queued.add(key)
                    self._reads.put((item, container))

    def vanished(self, item: PodSeen) -> None:
        """A deleted pod's last state was emitted first; nothing more to do."""

    def contact(self, ok: bool, detail: str = "") -> None:
        """The Job source reports the API's health; this logs only the changes."""
        if ok != self._reachable:
            self._reachable = ok
            if not ok:
                logger.warning("pod watch: %s", detail)

    def _listed(self, namespace: str) -> bool:
        return any(r.synced and r.namespace in (None, namespace) for r in self._reflectors)

    def _crashed(self, reflector: Reflector[PodSeen], error: BaseException) -> None:
        logger.error("pod watch on %s restarts after %r", reflector.scope, error)

    def _remember(self, key: str, at: str) -> None:
        self._scanned[key] = at
        if len(self._scanned) > 2 * MAX_REMEMBERED_CONTAINERS:  # amortised trim, oldest out
            newest = sorted(self._scanned.items(), key=lambda item: item[1])
            self._scanned = dict(newest[-MAX_REMEMBERED_CONTAINERS:])

    # -- reading logs -----------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stopped.is_set():
            task = self._reads.get()
            if task is None:
                return
            pod, container = task
            key = f"{pod.uid}/{container}"
            try:
                self._scan(pod, container)
            finally:
                with self.lock:
                    self._queued.discard(key)
                    self._remember(key, format_rfc3339(datetime.now(UTC)))

    def _scan(self, pod: PodSeen, container: str) -> None:
        try:
            response: Any = self._core.read_namespaced_pod_log(
                pod.name,
                pod.namespace,
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
                "reading log of %s/%s[%s] failed: %s", pod.namespace, pod.name, container, error
            )
            return
        for traceback in find_tracebacks(timestamped_lines(raw[: self.max_bytes])):
            self._emit(
                TracebackSeen(
                    namespace=pod.namespace,
                    pod=pod.name,
                    container=container,
                    job=pod.job,
                    time=traceback.time,
                    first_line=traceback.first_line,
                    final_line=traceback.final_line,
                    labels={str(k): str(v) for k, v in pod.labels.items()},
                    job_uid=pod.job_uid,
                )
            )


def _ignore(_: BaseException) -> None:
    """The log reader keeps no state a crash could corrupt."""
