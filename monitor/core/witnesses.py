"""Two witnesses of one run: the Kubernetes API, and the Job events kept in Cloud Logging.

The API tells first and tells more (start, labels, owner); the events tell what the API can
no longer list, such as a Job that ended and was deleted while the daemon was down. The
engine asks `Witnesses` two questions:

- `counts(job)` — whether a run's end is news. An end the API reported is never taken
  again from an event (the API's identity of the Job wins, so the event's name-derived
  family cannot match it elsewhere); any end is still counted once per uid by the tracks
  and the posted-key log, whichever witness tells first.
- `limit(due, horizon, ...)` — how far a deadline may be judged. After a restart, a
  deadline that became due before the restart waits until the events have been read up
  to the restart (or until `bound` has passed: then it is judged with what is known);
  deadlines after the restart never wait for this slower source.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from datetime import datetime, timedelta

from monitor.core.facts import JobSeen
from monitor.core.runs import RunHistory

#: How many API-reported ends are remembered (see `Witnesses.counts`).
REMEMBERED_ENDS = 100_000


def cronjob_of(job_name: str) -> str | None:
    """The CronJob a Job of this name was made by, under the CronJob naming rule: the
    CronJob's name, a dash, and the scheduled time in minutes (`nightly-29400000`).
    String operations, not a regex: this runs for every Job of a relist."""
    cronjob, dash, minutes = job_name.rpartition("-")
    if dash and cronjob and minutes.isascii() and minutes.isdigit():
        return cronjob
    return None


@dataclasses.dataclass(frozen=True)
class CatchUp:
    """Deadlines due before `restarted_at` wait for the events, until `give_up_at`."""

    restarted_at: datetime
    give_up_at: datetime


class Witnesses:
    """What the engine knows about who told it of each run's end."""

    def __init__(self) -> None:
        self._ended_by_api: OrderedDict[str, None] = OrderedDict()
        self.catch_up: CatchUp | None = None
        #: Set when a catch-up ended by its bound rather than by the events (for a log line).
        self.lapsed_at: datetime | None = None

    def counts(self, job: JobSeen) -> bool:
        """Whether `job` may change anything: False for an event of an end the API told
        whose name would give it another family than the API's. (An event of a Job whose
        owner the naming rule gets right matches the same batches, where the tracks and
        the posted keys count it once; only the others are remembered, which keeps this
        memory small: most Jobs are a CronJob's, named by the rule.)"""
        if job.witness == "api":
            renamed = job.kind == "Job" and cronjob_of(job.name) != job.cronjob
            if job.outcome != "running" and renamed:
                self._ended_by_api[job.uid] = None
                self._ended_by_api.move_to_end(job.uid)
                if len(self._ended_by_api) > REMEMBERED_ENDS:
                    self._ended_by_api.popitem(last=False)
            return True
        return job.uid not in self._ended_by_api

    @staticmethod
    def as_recorded(job: JobSeen, runs: RunHistory) -> JobSeen | None:
        """What a batch's run history should record of `job`: an event's end keeps the
        start the API showed for a run it saw running; None if the run already ended."""
        if job.witness == "api":
            return job
        if runs.ended_run(job.uid) is not None:
            return None
        prior = runs.running_state(job.uid)
        if prior is None:
            return job
        return dataclasses.replace(
            job,
            start_time=prior.start_time,
            created_at=prior.created_at,
            labels=prior.labels,
            cronjob=prior.cronjob or job.cronjob,
        )

    def await_events(self, restarted_at: datetime, bound: timedelta) -> None:
        """After a restart: hold deadlines due before it until the events reach it."""
        self.catch_up = CatchUp(restarted_at, restarted_at + bound)

    def released(self, events_seen: datetime | None, now: datetime) -> bool:
        """Whether no deadline waits for the events any more: there is no catch-up, or it
        just ended (the events reached the restart, or the bound passed)."""
        catch_up = self.catch_up
        if catch_up is None:
            return True
        if events_seen is not None and events_seen >= catch_up.restarted_at:
            self.catch_up = None
            return True
        if now >= catch_up.give_up_at:
            self.catch_up, self.lapsed_at = None, now
            return True
        return False

    def limit(
        self, due: datetime, horizon: datetime, events_seen: datetime | None
    ) -> datetime | None:
        """Up to when a track due at `due` may be judged now: `horizon`, or earlier (None:
        not at all yet) while it waits for the events (call `released` first)."""
        catch_up = self.catch_up
        if catch_up is None or due >= catch_up.restarted_at:
            return horizon
        if events_seen is None or events_seen < due:
            return None
        return min(horizon, events_seen)

    def wakeup(self) -> datetime | None:
        """When the engine must look again for a catch-up to end by its bound."""
        return self.catch_up.give_up_at if self.catch_up is not None else None
