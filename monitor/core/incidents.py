"""Incidents: a batch's unbroken spell of misses is one alert, not one per deadline.

The first miss posts a message under its own key; every further miss while the incident is
open edits that message (how many deadlines were missed, the latest one); a reminder is
posted in its thread every `slack.remind`; the first success after the first miss resolves
the whole spell. A batch has at most one open incident, so state stays O(1) per batch
however long it stays broken, and a catch-up after downtime is one message, not hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from monitor.core.facts import Action, Edit, Remind, Resolve
from monitor.core.kinds import (
    IncidentKind,
    MissedDeadlineDetails,
    RecoveredDetails,
    ReminderDetails,
)
from monitor.core.schedule import epoch, from_epoch, iso


class IncidentSummary(TypedDict):
    """What every message of an incident repeats: how many deadlines, the latest one."""

    missed_count: int
    latest_deadline: str


@dataclass
class Incident:
    """One open spell of misses of one batch.

    `opened_at` is when the first miss became due (its Dk + grace, or the stale instant):
    a success after it ends the spell. `first`/`latest` are the first and latest missed
    deadline (for `stale`, both the instant it went stale); `missed` counts deadlines.
    """

    kind: IncidentKind
    batch: str
    key: str
    opened_at: datetime
    first: datetime
    latest: datetime
    missed: int = 1
    reminders: int = 0
    zone: str = "UTC"  # the batch's timezone: messages show instants in it

    def grown(self, deadlines: list[datetime], details: MissedDeadlineDetails) -> Edit:
        """More deadlines missed while open: the message is edited, nothing new is posted."""
        self.missed += len(deadlines)
        self.latest = deadlines[-1]
        grown: MissedDeadlineDetails = {**details, **self.summary()}
        return Edit(
            key=self.key,
            kind=self.kind,
            batch=self.batch,
            at=self.latest,
            revision=self.missed,
            details=grown,
        )

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(ZoneInfo(self.zone))

    def summary(self) -> IncidentSummary:
        return {"missed_count": self.missed, "latest_deadline": iso(self.local(self.latest))}

    def next_reminder(self, every: timedelta) -> datetime | None:
        if every <= timedelta(0):
            return None
        return self.opened_at + every * (self.reminders + 1)

    def reminder(self, now: datetime, every: timedelta) -> list[Action]:
        """At most one reminder per call, numbered by the intervals elapsed (a daemon that
        was down for three intervals reminds once, not three times)."""
        due = self.next_reminder(every)
        if due is None or now < due:
            return []
        self.reminders = int((now - self.opened_at) / every)
        details: ReminderDetails = {
            **self.summary(),
            "open_since": iso(self.local(self.opened_at)),
            "timezone": self.zone,
            "reminder": self.reminders,
        }
        return [
            Remind(
                key=f"remind:{self.key}@{self.reminders}",
                parent=self.key,
                kind=self.kind,
                batch=self.batch,
                at=self.opened_at + every * self.reminders,
                details=details,
            )
        ]

    def resolved(self, at: datetime, details: RecoveredDetails) -> Resolve:
        late = max(0, int((at - self.latest).total_seconds()))
        how: RecoveredDetails = {
            **details,
            **self.summary(),
            "completed_at": iso(at),
            "late_seconds": late,
        }
        return Resolve(key=self.key, kind=self.kind, batch=self.batch, at=at, details=how)

    def closed(self, at: datetime, reason: str) -> Resolve:
        """Closed without a recovery (the batch left the config or changed kind)."""
        summary = self.summary()
        how: RecoveredDetails = {
            "missed_count": summary["missed_count"],
            "latest_deadline": summary["latest_deadline"],
            "closed": reason,
        }
        return Resolve(key=self.key, kind=self.kind, batch=self.batch, at=at, details=how)

    def default_key(self) -> str:
        """The key this incident's tracks give it (saved as "" when it is this one)."""
        if self.kind == "stale":
            return f"stale:{self.batch}@{iso(self.first)}"
        return f"{self.batch}@{iso(self.local(self.first))}"

    def to_json(self) -> list[Any]:
        """[kind, key, opened_at, first, latest, missed, reminders, zone] (epoch seconds;
        key "" when it is `default_key`)."""
        return [
            self.kind,
            "" if self.key == self.default_key() else self.key,
            epoch(self.opened_at),
            epoch(self.first),
            epoch(self.latest),
            self.missed,
            self.reminders,
            self.zone,
        ]

    @classmethod
    def from_json(cls, batch: str, data: list[Any]) -> Incident:
        kind, key, opened, first, latest, missed, reminders, zone = data
        if kind not in ("missed_deadline", "stale"):
            raise ValueError(f"unknown incident kind {kind!r}")
        incident = cls(
            kind=kind,
            batch=batch,
            key=str(key),
            opened_at=from_epoch(opened),
            first=from_epoch(first),
            latest=from_epoch(latest),
            missed=int(missed),
            reminders=int(reminders),
            zone=str(zone),
        )
        if not incident.key:
            incident.key = incident.default_key()
        return incident
