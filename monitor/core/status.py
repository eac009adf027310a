"""A batch's status: what a person asks first — is it ok, when is it next due, what ran.

`state` is the first that holds of (SPEC `/api/status`): missed or stale (an open incident),
failing (the latest run failed, or raised a failure or traceback since it started and no
success came after), running (the latest run is still running), due (the next deadline, not yet met,
is within `DUE_SOON`, or a freshness batch is in the last fifth of its bound), ok.
Every instant is shown with the batch zone's offset.

Each run of a deadline batch also says whether it was `on_time` (see `run_on_time`): the
status page colours its strip of recent runs by it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.core.runs import Run, RunHistory
from monitor.core.schedule import CronSchedule, DeadlineRule, format_duration, iso
from monitor.core.spec import BatchSpec
from monitor.core.tracks import DeadlineTrack, Track

#: A deadline this close, not yet met, shows the batch as "due".
DUE_SOON = timedelta(hours=1)
ZERO = timedelta(0)
#: The clock's resolution: "at or after t" is "strictly after t - _TICK".
_TICK = timedelta(microseconds=1)


def run_on_time(run: Run, rule: DeadlineRule | None) -> bool | None:
    """Whether a succeeded run of a deadline batch finished in time for its deadline.

    Its deadline D is the batch's first deadline instant at or after the run's start; the
    run is on time iff it finished at or before D + grace. None when there is nothing to
    judge: a freshness batch (no `rule`), a run still running or failed, or one whose start
    or completion is unknown.
    """
    if rule is None or run.outcome != "succeeded":
        return None
    if run.started is None or run.finished is None:
        return None
    return _finished_in_time(rule.cron, rule.grace, run.started, run.finished)


@functools.lru_cache(maxsize=1 << 15)
def _finished_in_time(
    cron: CronSchedule, grace: timedelta, started: datetime, finished: datetime
) -> bool:
    # Memoised on exactly what it reads: a run's answer never changes, the page asks again
    # every few seconds, and a cron step costs tens of microseconds (thousands of batches
    # times 20 runs each).
    return finished <= cron.next_after(started - _TICK) + grace


def batch_status(
    batch: BatchSpec,
    track: Track,
    runs: RunHistory,
    open_alerts: Mapping[str, str],
    last_failure: datetime | None,
    zone: ZoneInfo,
    now: datetime,
    silenced: bool = False,
) -> dict[str, Any]:
    """The `/api/status` entry of one batch; `open_alerts` maps open keys to their kind;
    `silenced` when a silence covers the batch now."""
    kinds = set(open_alerts.values())
    last_success = track.last_success
    rule = track.rule if isinstance(track, DeadlineTrack) else None
    if isinstance(track, DeadlineTrack):
        upcoming = track.upcoming
        due = upcoming - now <= DUE_SOON and not track.met_upcoming()
        next_due = iso(upcoming.astimezone(zone))
        schedule = "deadline"
        on_time_rate = track.on_time_rate()
    else:
        stale_at = track.stale_at()
        due = stale_at - now <= track.freshness / 5
        next_due = iso(stale_at.astimezone(zone))
        schedule = "freshness"
        on_time_rate = None
    latest = runs.latest()
    # A failure or traceback counts against the latest run when it came after its start.
    failed_since = last_failure is not None and (
        last_success is None or last_failure > last_success
    )
    if latest is not None and latest.started is not None and last_failure is not None:
        failed_since = failed_since and last_failure >= latest.started
    failing = failed_since or (latest is not None and latest.outcome == "failed")
    if silenced:
        state = "silenced"
    elif "missed_deadline" in kinds:
        state = "missed"
    elif "stale" in kinds:
        state = "stale"
    elif failing:
        state = "failing"
    elif "at_risk" in kinds:
        state = "at_risk"
    elif latest is not None and latest.outcome == "running":
        state = "running"
    else:
        state = "due" if due else "ok"

    def local(instant: datetime | None) -> str | None:
        return iso(instant.astimezone(zone)) if instant is not None else None

    return {
        "name": batch.name,
        "schedule": schedule,
        "timezone": zone.key,
        "state": state,
        "last_success": local(last_success),
        "next_deadline": next_due,
        "open_alerts": list(open_alerts),
        "last_failure": local(last_failure),
        "rule": batch.deadline or f"success every {format_duration(batch.freshness or ZERO)}",
        "on_time_rate": on_time_rate,
        "duration_p50_seconds": runs.duration_quantile(0.5),
        "duration_p90_seconds": runs.duration_quantile(0.9),
        "runs": [
            {
                "name": run.name,
                "started": local(run.started),
                "finished": local(run.finished),
                "outcome": run.outcome,
                "duration_seconds": run.duration_seconds,
                "on_time": run_on_time(run, rule),
                **({"reason": run.reason} if run.reason else {}),
            }
            for run in runs.recent()
        ],
    }
