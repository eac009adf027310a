"""A batch's status: what a person asks first — is it ok, when is it next due, what ran.

`state` is the first that holds of (SPEC `/api/status`): missed or stale (an open incident),
failing (the latest run failed, or raised a failure or traceback since it started and no
success came after), running (the latest run is still running), due (the next deadline, not yet met,
is within `DUE_SOON`, or a freshness batch is in the last fifth of its bound), ok.
Every instant is shown with the batch zone's offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.core.runs import RunHistory
from monitor.core.schedule import format_duration, iso
from monitor.core.spec import BatchSpec
from monitor.core.tracks import DeadlineTrack, Track

#: A deadline this close, not yet met, shows the batch as "due".
DUE_SOON = timedelta(hours=1)
ZERO = timedelta(0)


def batch_status(
    batch: BatchSpec,
    track: Track,
    runs: RunHistory,
    open_alerts: Mapping[str, str],
    last_failure: datetime | None,
    zone: ZoneInfo,
    now: datetime,
) -> dict[str, Any]:
    """The `/api/status` entry of one batch; `open_alerts` maps open keys to their kind."""
    kinds = set(open_alerts.values())
    last_success = track.last_success
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
    if "missed_deadline" in kinds:
        state = "missed"
    elif "stale" in kinds:
        state = "stale"
    elif failing:
        state = "failing"
    elif latest is not None and latest.outcome == "running":
        state = "running"
    else:
        state = "due" if due else "ok"

    def local(instant: datetime | None) -> str | None:
        return iso(instant.astimezone(zone)) if instant is not None else None

    return {
        "name": batch.name,
        "schedule": schedule,
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
                **({"reason": run.reason} if run.reason else {}),
            }
            for run in runs.recent()
        ],
    }
