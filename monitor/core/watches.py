"""Warnings from a batch's runs, before and beside its deadline: `at_risk` and `overrun`.

Both are functions of the batch's runs, its schedule and the horizon (the instant up to
which the cluster has been seen), judged like deadlines: nothing is consumed, so a
restart or a reload judges the same again, and keys make every warning at most once.

- `overrun` (with `max_runtime`): a run still running at start + max_runtime, as seen
  up to the horizon, is hung. Key `overrun:<namespace>/<name>@<uid>`, in the run's
  thread. Resolved when the run ends (succeeded, failed, or deleted while running).
- `at_risk` (deadline batches, `at_risk: true`, ≥ `MIN_DURATIONS` successful durations):
  expected = p90 of the recent successful durations. Before Dk + grace, while no success
  lies in Dk's window: no run running at Dk + grace - expected (`not_started`), one that
  started after that instant (`started_late`), or a running run that has already run
  longer than expected (`running_long`, at start + expected). Key
  `at_risk:<batch>@<Dk>`, once per deadline. A success in the window resolves it
  ("made it"); if Dk is missed, the miss supersedes it (closed, edited to say so).

`watch` returns the actions due at the horizon and the next instant at which something
could become due, so the engine wakes for it and never polls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.core.facts import Action, JobSeen, Post, Resolve
from monitor.core.kinds import AtRiskDetails, OverrunDetails, RecoveredDetails
from monitor.core.runs import Run, RunHistory
from monitor.core.schedule import NEVER, iso
from monitor.core.spec import BatchSpec
from monitor.core.tracks.deadline import DeadlineTrack

#: Successful durations needed before `at_risk` trusts their p90.
MIN_DURATIONS = 5
SUPERSEDED = "superseded by the missed deadline"


@dataclass
class Watched:
    """What `watch` found: actions due now, and when to look again."""

    actions: list[Action] = field(default_factory=list)
    next_check: datetime = NEVER


def overrun_key(job: JobSeen) -> str:
    return f"overrun:{job.namespace}/{job.name}@{job.uid}"


def at_risk_key(batch: str, deadline: datetime) -> str:
    return f"at_risk:{batch}@{iso(deadline)}"


def run_thread(namespace: str, job: str) -> str:
    """The thread of one run: its failure, tracebacks and overrun are one conversation."""
    return f"run:{namespace}/{job}"


def watch(
    batch: BatchSpec,
    track: object,
    runs: RunHistory,
    horizon: datetime,
    open_alerts: Mapping[str, str],
    zone: ZoneInfo,
) -> Watched:
    """The batch's `overrun` and `at_risk` actions due at `horizon` (see the module);
    `open_alerts` are the batch's open alert keys and their kinds."""
    found = Watched()
    running = runs.running()
    p90 = runs.duration_quantile(0.9, at_least=1)
    _overruns(batch, running, runs, horizon, open_alerts, zone, p90, found)
    if isinstance(track, DeadlineTrack):
        _at_risk(batch, track, running, runs, horizon, open_alerts, zone, found)
    return found


def _overruns(
    batch: BatchSpec,
    running: list[JobSeen],
    runs: RunHistory,
    horizon: datetime,
    open_alerts: Mapping[str, str],
    zone: ZoneInfo,
    p90: int | None,
    found: Watched,
) -> None:
    for key, kind in open_alerts.items():
        if kind == "overrun":
            ended = _ended(key, runs)
            if ended is not None:
                found.actions.append(_overrun_over(batch, key, ended, horizon, zone))
    limit = batch.max_runtime
    if limit is None:
        return
    for job in running:
        started = job.start_time or job.created_at
        if started is None:
            continue
        due = started + limit
        if due > horizon:
            found.next_check = min(found.next_check, due)
            continue
        details: OverrunDetails = {
            "namespace": job.namespace,
            "job": job.name,
            "uid": job.uid,
            "run_kind": job.kind,
            "started": iso(started.astimezone(zone)),
            "max_runtime_seconds": int(limit.total_seconds()),
            "p90_seconds": p90,
            "timezone": zone.key,
        }
        found.actions.append(
            Post(
                kind="overrun",
                batch=batch.name,
                key=overrun_key(job),
                at=due,
                details=details,
                thread=run_thread(job.namespace, job.name),
            )
        )


def _ended(key: str, runs: RunHistory) -> Run | bool | None:
    """The ended run the overrun `key` names; True when it vanished (deleted while
    running, or no longer among the recent runs); None while it still runs."""
    uid = key.rpartition("@")[2]
    ended = runs.ended_run(uid)
    if ended is not None:
        return ended
    return None if runs.running_state(uid) is not None else True


def _overrun_over(
    batch: BatchSpec, key: str, ended: Run | bool, horizon: datetime, zone: ZoneInfo
) -> Resolve:
    details: RecoveredDetails = {"timezone": zone.key}
    at = horizon
    if isinstance(ended, Run):
        finished = ended.finished
        details["outcome"] = ended.outcome
        if finished is not None:
            at = finished
            details["ended_at"] = iso(finished)
            if ended.duration_seconds is not None:
                details["duration_seconds"] = ended.duration_seconds
    else:
        details["outcome"] = "gone"  # deleted while running, or no longer listed
    return Resolve(key=key, kind="overrun", batch=batch.name, at=at, details=details)


def _at_risk(
    batch: BatchSpec,
    track: DeadlineTrack,
    running: list[JobSeen],
    runs: RunHistory,
    horizon: datetime,
    open_alerts: Mapping[str, str],
    zone: ZoneInfo,
    found: Watched,
) -> None:
    grace = track.rule.grace
    for key, kind in open_alerts.items():  # the ones whose deadline has been decided
        if kind != "at_risk":
            continue
        deadline = datetime.fromisoformat(key.rpartition("@")[2])
        if deadline + grace > horizon and not track.met_deadline(deadline):
            continue
        if track.met_deadline(deadline):
            found.actions.append(_made_it(batch, key, track, deadline))
        else:
            closed: RecoveredDetails = {"closed": SUPERSEDED}
            found.actions.append(
                Resolve(key=key, kind="at_risk", batch=batch.name, at=deadline + grace,
                        details=closed)
            )  # fmt: skip
    expected = runs.duration_quantile(0.9, at_least=MIN_DURATIONS)
    if not batch.at_risk or expected is None:
        return
    deadline = track.upcoming
    decided_at = deadline + grace
    if decided_at <= horizon or track.met_upcoming():
        return
    key = at_risk_key(batch.name, deadline.astimezone(zone))
    if key in open_alerts:
        return
    latest_start = decided_at - _seconds(expected)
    # Any running run counts (SPEC): one hung since an earlier window has already run
    # longer than expected, so this deadline is at risk too.
    started = [(job.start_time or job.created_at, job) for job in running]
    long_runs = [(at, job) for at, job in started if at is not None]
    details: AtRiskDetails = {
        "deadline": iso(deadline),
        "decided_at": iso(decided_at),
        "timezone": zone.key,
        "expected_seconds": expected,
        "last_success": iso(track.last_success) if track.last_success else None,
    }
    for at, job in sorted(long_runs, key=lambda pair: pair[0]):
        over = at + _seconds(expected)
        if over >= decided_at:
            continue  # its expected end is after the deadline: judged at latest_start
        if over <= horizon:
            found.actions.append(_risk(batch, key, over, _why(details, "running_long", job, zone)))
            return
        found.next_check = min(found.next_check, over)
    if latest_start > horizon:
        found.next_check = min(found.next_check, latest_start)
        return
    if not long_runs:
        found.actions.append(_risk(batch, key, latest_start, _why(details, "not_started")))
        return
    for at, job in long_runs:  # started too late: its expected end is after the deadline
        if at + _seconds(expected) >= decided_at:
            risk = _why(details, "started_late", job, zone)
            found.actions.append(_risk(batch, key, latest_start, risk))
            return
    found.next_check = min(found.next_check, decided_at)


def _why(
    base: AtRiskDetails, why: str, job: JobSeen | None = None, zone: ZoneInfo | None = None
) -> AtRiskDetails:
    details = base.copy()
    details["why"] = why
    details["run"] = job.name if job is not None else None
    started = (job.start_time or job.created_at) if job is not None else None
    details["started"] = iso(started.astimezone(zone)) if started and zone else None
    return details


def _risk(batch: BatchSpec, key: str, at: datetime, details: AtRiskDetails) -> Post:
    return Post(kind="at_risk", batch=batch.name, key=key, at=at, details=dict(details))


def _made_it(batch: BatchSpec, key: str, track: DeadlineTrack, deadline: datetime) -> Resolve:
    start, end = track.rule.window_of(deadline)
    inside = [at for at in track.successes.values() if start < at <= end]
    completed = min(inside) if inside else deadline
    details: RecoveredDetails = {
        "deadline": iso(deadline),
        "completed_at": iso(completed),
        "timezone": track.rule.cron.tz.key,
        "late_seconds": 0,
    }
    return Resolve(key=key, kind="at_risk", batch=batch.name, at=completed, details=details)


def _seconds(count: int) -> timedelta:
    return timedelta(seconds=count)
