"""A batch's runs: what its Jobs did, newest first, and how long its successes took.

The deadline and freshness tracks judge from successes; this history is what people and
the later questions need: the status page's strip of recent runs, the on-time rate's
companion "how long does it take", and what the latest run did when a deadline is missed.

It is bounded twice: the last `SHOWN_RUNS` runs (by start) are kept in memory and rebuilt
from the cluster after a restart (Kubernetes keeps the Jobs its history limits allow), and
the durations of the last `KEPT_DURATIONS` successes are saved, because the cluster forgets
them sooner than a p90 needs them. A success adds its duration only if it completed after
the latest one recorded, so a relist after a restart never counts a run twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from monitor.core.facts import JobOutcome, JobSeen
from monitor.core.schedule import epoch

SHOWN_RUNS = 20
KEPT_DURATIONS = 20
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


class Run(NamedTuple):
    """One run (Job or Workflow) of a batch; `finished` is its completion or failure time.

    A tuple: a relist after a restart makes one per listed Job, and tuples build fastest.
    """

    uid: str
    name: str
    started: datetime | None
    finished: datetime | None
    outcome: JobOutcome
    reason: str | None = None

    @property
    def duration_seconds(self) -> int | None:
        if self.started is None or self.finished is None:
            return None
        return max(0, int((self.finished - self.started).total_seconds()))

    @property
    def order(self) -> datetime | None:
        return self.started or self.finished

    @classmethod
    def of(cls, job: JobSeen) -> Run:
        started = job.start_time or job.created_at
        if job.outcome == "succeeded":
            finished = job.completion_time
        elif job.outcome == "failed":
            finished = job.failed_at or started
        else:
            finished = None
        return cls(job.uid, job.name, started, finished, job.outcome, job.reason)


class RunHistory:
    """The recent runs of one batch and the durations of its recent successes."""

    __slots__ = ("_jobs", "durations", "durations_through")

    def __init__(self, durations: list[int] | None = None, through: int = 0) -> None:
        # The latest state of each recent Job, as seen: turned into `Run`s only when asked
        # (a relist after a restart delivers every listed Job, and most are never shown).
        self._jobs: dict[str, JobSeen] = {}
        self.durations: list[int] = durations or []
        self.durations_through = through  # epoch second of the latest success counted

    @property
    def _runs(self) -> dict[str, Run]:
        runs = (Run.of(job) for job in self._jobs.values())
        return {run.uid: run for run in runs}

    def seen(self, job: JobSeen) -> bool:
        """Record the latest state of one of the batch's Jobs; True if what is saved (the
        durations) changed."""
        self._jobs[job.uid] = job if job.outcome == "running" else _settled(job)
        if len(self._jobs) > 2 * SHOWN_RUNS:  # trimmed now and then: amortised O(1)
            newest = sorted(self._jobs.values(), key=_job_order, reverse=True)[:SHOWN_RUNS]
            self._jobs = {kept.uid: kept for kept in newest}
        end_time = job.completion_time
        if job.outcome != "succeeded" or end_time is None:
            return False
        end = int(end_time.timestamp())
        if end <= self.durations_through:
            return False
        started = job.start_time or job.created_at
        if started is None:
            return False
        self.durations_through = end
        duration = max(0, int((end_time - started).total_seconds()))
        self.durations = [*self.durations, duration][-KEPT_DURATIONS:]
        return True

    def running(self) -> list[JobSeen]:
        """The batch's runs still running, as last seen."""
        return [job for job in self._jobs.values() if job.outcome == "running"]

    def state_of(self, uid: str) -> JobSeen | None:
        """The latest state of one recent run (None: not among the recent runs)."""
        return self._jobs.get(uid)

    def vanished(self, uid: str) -> bool:
        """A run deleted while it was still running ends without an outcome: forgotten, so
        nothing waits on it (True if it was a running run here)."""
        job = self._jobs.get(uid)
        if job is None or job.outcome != "running":
            return False
        del self._jobs[uid]
        return True

    def recent(self) -> list[Run]:
        """Newest first, at most `SHOWN_RUNS`."""
        return sorted(self._runs.values(), key=_sort_key, reverse=True)[:SHOWN_RUNS]

    def latest(self, at: datetime | None = None) -> Run | None:
        """The newest run (started at or before `at`, when given)."""
        limit = at.timestamp() if at is not None else float("inf")
        newest: JobSeen | None = None
        best = (float("-inf"), "")
        for job in self._jobs.values():
            order = _job_order(job)
            if order[0] <= limit and order > best:
                newest, best = job, order
        return Run.of(newest) if newest is not None else None

    def duration_quantile(self, q: float, at_least: int = 1) -> int | None:
        """The `q` quantile (nearest rank) of the recent successful durations, in seconds;
        None with fewer than `at_least` of them."""
        if len(self.durations) < max(1, at_least):
            return None
        ordered = sorted(self.durations)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def to_json(self, last_success: datetime | None = None) -> dict[str, Any]:
        """{r: [duration, …], u: latest success counted} — `u` left out when it is the
        batch's `last_success`, saved beside it (the usual case); {} when empty."""
        if not self.durations:
            return {}
        if last_success is not None and epoch(last_success) == self.durations_through:
            return {"r": self.durations}
        return {"r": self.durations, "u": self.durations_through}

    @classmethod
    def from_json(cls, data: Any, last_success: Any = None) -> RunHistory:
        """The saved form (`data` holds `r` and maybe `u`; `last_success` is the saved
        epoch seconds beside it)."""
        durations = [int(d) for d in data.get("r") or () if int(d) >= 0][-KEPT_DURATIONS:]
        through = data.get("u", last_success)
        return cls(durations, int(through or 0)) if durations else cls()


def _settled(job: JobSeen) -> JobSeen:
    """An ended run as the history keeps it: without its labels and message, which nothing
    asks of an ended run and which are most of its size (a Job's labels name its own uid
    twice). A running run keeps them: an end read from its Event takes them over."""
    if not job.labels and job.message is None:
        return job
    return dataclasses.replace(job, labels=_NO_LABELS, message=None)


def _job_order(job: JobSeen) -> tuple[float, str]:
    """A Job's place among runs: by start (else creation, else completion), like `Run`."""
    started = job.start_time or job.created_at or job.completion_time or job.failed_at
    return (started.timestamp() if started is not None else 0.0, job.uid)


def _sort_key(run: Run) -> tuple[float, str]:
    order = run.order
    return (epoch(order) if order is not None else 0.0, run.uid)


def describe_run(
    run: Run | None, at: datetime, zone: ZoneInfo, p90_seconds: int | None = None
) -> dict[str, Any]:
    """What a missed deadline says of the batch's latest run, as of `at` (JSON-able):
    `outcome` is `none` when no run is known, else the run's, with its name and times in the
    batch's zone; a running run has `running_seconds` (and `hung` when it has run longer
    than the p90 of recent successes)."""
    if run is None:
        return {"outcome": "none"}
    described: dict[str, Any] = {
        "name": run.name,
        "outcome": run.outcome,
        "started": run.started.astimezone(zone).isoformat() if run.started else None,
        "finished": run.finished.astimezone(zone).isoformat() if run.finished else None,
    }
    if run.reason:
        described["reason"] = run.reason
    if run.outcome == "running" and run.started is not None:
        running = max(0, int((at - run.started).total_seconds()))
        described["running_seconds"] = running
        if p90_seconds is not None:
            described["p90_seconds"] = p90_seconds
            described["hung"] = running > p90_seconds
    return described
