"""Which Job a log line's pod belongs to, so batches match tracebacks like Jobs.

Log sources name a pod and, as far as the pod says, its Job (name and uid). The engine
matches batches by owner CronJob and Job labels, which a log entry does not carry; the
directory adds them from the Jobs the Kubernetes source delivered, and refuses a claim
the cluster contradicts: a pod whose stated Job uid is not the uid of the Job of that
name is not that Job's pod (anyone can label a bare pod with another batch's Job name),
so its traceback is unmatched.

It remembers only Jobs (not Workflows), at most `limit` of them, least recently changed
first out; without a log source it is not fed at all.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from monitor.core.facts import JobSeen, TracebackSeen

KNOWN_JOBS_LIMIT = 200_000


class JobDirectory:
    """Jobs by (namespace, name), for attributing log lines to them (thread-safe: the
    Kubernetes source feeds it while log sources read it)."""

    def __init__(self, limit: int = KNOWN_JOBS_LIMIT) -> None:
        self._jobs: OrderedDict[tuple[str, str], JobSeen] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._jobs)

    def seen(self, job: JobSeen) -> None:
        if job.kind != "Job":
            return
        key = (job.namespace, job.name)
        with self._lock:
            self._jobs[key] = job
            self._jobs.move_to_end(key)
            if len(self._jobs) > self._limit:
                self._jobs.popitem(last=False)

    def attribute(self, fact: TracebackSeen) -> TracebackSeen:
        """`fact` with its Job's owner and labels, or without a Job if the pod's claim is
        contradicted by the Job's uid."""
        if fact.job is None:
            return fact
        with self._lock:
            job = self._jobs.get((fact.namespace, fact.job))
        if job is None:
            return fact
        if fact.job_uid is not None and fact.job_uid != job.uid:
            return dataclasses.replace(fact, job=None, job_uid=None, cronjob=None)
        return dataclasses.replace(fact, cronjob=job.cronjob, labels=dict(job.labels))

    def job_for_pod(self, namespace: str, pod: str) -> str | None:
        """A Job's pods are named `<job>-<suffix>` (indexed Jobs: `<job>-<index>-<suffix>`)."""
        for cut in (1, 2):
            parts = pod.rsplit("-", cut)
            with self._lock:
                known = len(parts) == cut + 1 and (namespace, parts[0]) in self._jobs
            if known:
                return parts[0]
        return None
