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

import math
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from monitor.core.facts import JobOutcome, JobSeen
from monitor.core.schedule import epoch

SHOWN_RUNS = 20
KEPT_DURATIONS = 20


class Run(NamedTuple):
    """One run (Job or Workflow) of a batch; `finished` is its completion or failure time
    (a failure without its own time is placed at the run's start, as the engine places it).

    A tuple: a relist after a restart makes one per listed Job, and tuples build fastest;
    an ended run is kept as one (it shares the strings and times of the `JobSeen`).
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

    __slots__ = ("_ended", "_running", "durations", "durations_through")

    def __init__(self, durations: list[int] | None = None, through: int = 0) -> None:
        # A running run is kept as last seen: an end read from its Event takes over its
        # start and labels. An ended run is kept as the `Run` it shows, which holds only
        # what is asked of it (a fifth of a `JobSeen` with its labels; 100,000 runs a day).
        self._running: dict[str, JobSeen] = {}
        self._ended: dict[str, Run] = {}
        self.durations: list[int] = durations or []
        self.durations_through = through  # epoch second of the latest success counted

    def seen(self, job: JobSeen) -> bool:
        """Record the latest state of one of the batch's Jobs; True if what is saved (the
        durations) changed."""
        if job.outcome == "running":
            self._ended.pop(job.uid, None)
            self._running[job.uid] = job
        else:
            self._running.pop(job.uid, None)
            self._ended[job.uid] = Run.of(job)
        if len(self._running) + len(self._ended) > 2 * SHOWN_RUNS:  # amortised O(1)
            self._trim()
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

    def _trim(self) -> None:
        """Keep the newest `SHOWN_RUNS` runs, running or ended."""
        kept = {run.uid for run in self.recent()}
        self._running = {uid: job for uid, job in self._running.items() if uid in kept}
        self._ended = {uid: run for uid, run in self._ended.items() if uid in kept}

    def running(self) -> list[JobSeen]:
        """The batch's runs still running, as last seen."""
        return list(self._running.values())

    def running_state(self, uid: str) -> JobSeen | None:
        """The latest state of one recent run that still runs (None: ended, or unknown)."""
        return self._running.get(uid)

    def ended_run(self, uid: str) -> Run | None:
        """One recent run that ended (None: still running, or not among the recent runs)."""
        return self._ended.get(uid)

    def vanished(self, uid: str) -> bool:
        """A run deleted while it was still running ends without an outcome: forgotten, so
        nothing waits on it (True if it was a running run here)."""
        return self._running.pop(uid, None) is not None

    def _runs(self) -> list[Run]:
        return [*map(Run.of, self._running.values()), *self._ended.values()]

    def recent(self) -> list[Run]:
        """Newest first, at most `SHOWN_RUNS`."""
        return sorted(self._runs(), key=_sort_key, reverse=True)[:SHOWN_RUNS]

    def latest(self, at: datetime | None = None) -> Run | None:
        """The newest run (started at or before `at`, when given)."""
        limit = at.timestamp() if at is not None else float("inf")
        newest: Run | None = None
        best = (float("-inf"), "")
        for run in self._runs():
            order = _sort_key(run)
            if order[0] <= limit and order > best:
                newest, best = run, order
        return newest

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


class RecentSuccesses:
    """The last `limit` successes of any Job, oldest first, each once (in memory only: a
    restart relists them), so that a batch added by a reload sees runs that completed
    before it was added.

    A deque and a set of uids: half the memory of an ordered dict (20,000 of them: 0.7 MB
    besides the runs, not 2.1).
    """

    __slots__ = ("_limit", "_runs", "_uids")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._runs: deque[JobSeen] = deque()
        self._uids: set[str] = set()

    def add(self, job: JobSeen) -> None:
        if job.uid in self._uids:
            return  # kept already: a relist or a repeated event
        if len(self._runs) >= self._limit:
            self._uids.discard(self._runs.popleft().uid)
        self._runs.append(job)
        self._uids.add(job.uid)

    def __iter__(self) -> Iterator[JobSeen]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


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
