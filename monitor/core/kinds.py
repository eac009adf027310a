"""The one registry of alert kinds: what each kind is, where it goes, what it carries.

Every rule that depends on the kind of an alert reads it here — which channel lane it is
routed to, how loud it is, whether it opens an incident, whether a later action resolves it,
whether a storm digest may fold it — so adding a kind is one entry plus a renderer.

Details are TypedDicts rather than classes: they are what the outbox saves and restores as
JSON unchanged, and a renderer reading an entry saved by an older version tolerates a
missing key. The engine builds them with their declared keys, which mypy checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

AlertKind = Literal[
    "missed_deadline",
    "stale",
    "at_risk",
    "overrun",
    "job_failed",
    "traceback",
    "recovered",
    "monitor_degraded",
]
IncidentKind = Literal["missed_deadline", "stale"]
#: `sla`: the batch's channel, else `slack.channel`. `errors`: the batch's `errors_channel`,
#: its `channel`, `slack.errors_channel`, `slack.channel` (SPEC "Channels").
Lane = Literal["sla", "errors"]
Severity = Literal["page", "warning", "info"]
#: Why the engine judged as it did, logged and counted (`sla_monitor_decisions_total`):
#: a deadline met; missed (an incident opens); repeat (a miss inside an open incident);
#: recovered (an incident resolved); suppressed (a signal a batch's `notify` switch mutes);
#: silenced (an alert due inside a silence of its batch: recorded, not posted).
Reason = Literal["met", "missed", "repeat", "recovered", "suppressed", "silenced"]


class MissedDeadlineDetails(TypedDict, total=False):
    deadline: str
    window_start: str
    window_end: str
    grace_seconds: int
    timezone: str
    last_success: str | None
    missed_count: int
    latest_deadline: str


class StaleDetails(TypedDict, total=False):
    last_success: str | None
    freshness_seconds: int
    stale_since: str
    missed_count: int
    latest_deadline: str


class AtRiskDetails(TypedDict, total=False):
    deadline: str
    decided_at: str  # deadline + grace
    timezone: str
    expected_seconds: int  # p90 of the recent successful durations
    why: str  # "not_started", "running_long" or "started_late"
    run: str | None  # the running run's name ("running_long")
    started: str | None
    last_success: str | None


class OverrunDetails(TypedDict, total=False):
    namespace: str
    job: str
    uid: str
    run_kind: str
    started: str
    max_runtime_seconds: int
    p90_seconds: int | None
    timezone: str


class JobFailedDetails(TypedDict):
    namespace: str
    job: str  # the run's name (a Job's or a Workflow's)
    uid: str
    cronjob: str | None
    reason: str | None
    message: str | None
    failed_at: str | None
    run_kind: NotRequired[str]  # "Workflow" for a Workflow; absent (older entries): a Job


class TracebackDetails(TypedDict):
    namespace: str
    pod: str
    container: str
    job: str | None
    cronjob: str | None
    first_line: str
    final_line: str
    time: str | None


class DegradedDetails(TypedDict, total=False):
    source: str
    since: str | None
    detail: str
    errors: list[str]


class RecoveredDetails(TypedDict, total=False):
    """How an alert ended: a completion (deadline, stale, at_risk "made it"), a run that
    ended (overrun), a source back, or `closed` (e.g. an at_risk superseded by the miss)."""

    deadline: str | None
    first_deadline: str | None
    timezone: str
    job_uid: str
    completed_at: str | None
    late_seconds: int
    missed_count: int
    latest_deadline: str
    source: str
    back_at: str | None
    closed: str
    outcome: str  # how an overrun run ended: succeeded, failed, deleted
    ended_at: str | None
    duration_seconds: int


class ReminderDetails(TypedDict, total=False):
    missed_count: int
    latest_deadline: str
    open_since: str | None
    timezone: str
    reminder: int


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What is true of every alert of one kind."""

    name: AlertKind
    lane: Lane
    severity: Severity
    #: Opens (or grows) the batch's one incident: repeats edit it, reminders follow it.
    incident: bool
    #: A later `Resolve` ends it (a `recovered` reply plus an edit of the message).
    resolvable: bool
    #: A storm digest may fold it; SLA alerts are never folded behind diagnostics.
    digestible: bool
    details: type


KINDS: dict[str, KindInfo] = {
    info.name: info
    for info in (
        KindInfo("missed_deadline", "sla", "page", True, True, False, MissedDeadlineDetails),
        KindInfo("stale", "sla", "page", True, True, False, StaleDetails),
        KindInfo("at_risk", "sla", "warning", False, True, True, AtRiskDetails),
        KindInfo("overrun", "sla", "warning", False, True, True, OverrunDetails),
        KindInfo("job_failed", "errors", "warning", False, False, True, JobFailedDetails),
        KindInfo("traceback", "errors", "warning", False, False, True, TracebackDetails),
        KindInfo("recovered", "sla", "info", False, False, False, RecoveredDetails),
        KindInfo("monitor_degraded", "sla", "page", False, True, False, DegradedDetails),
    )
}


def kind_info(kind: str) -> KindInfo:
    """The registry entry of `kind` (KeyError for a kind no version of this code made)."""
    return KINDS[kind]


def is_resolvable(kind: str) -> bool:
    info = KINDS.get(kind)
    return info is not None and info.resolvable


@dataclass(frozen=True, slots=True)
class Route:
    """Where an alert goes, in the core's words: a lane and the batch ("" for none).

    The notifier maps it to a Slack channel and mention from the config; the core never
    names a channel.
    """

    lane: Lane
    batch: str

    @classmethod
    def of(cls, kind: str, batch: str) -> Route:
        return cls(kind_info(kind).lane, batch)
