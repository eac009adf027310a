"""One freshness batch's judgement: stale when no success for longer than its bound.

Like deadlines, successes are walked in time order up to the horizon, so the outcome
depends only on which successes exist. The stale instant is computed ahead
(`last success + freshness`, or from when the batch started being watched) and stamped on
the alert, Healthchecks-style: the alert says when the batch went stale, not when a loop
noticed. One spell of staleness is one incident (only reminders follow it); a success
after that instant resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core.facts import Action, Post
from monitor.core.incidents import Incident
from monitor.core.kinds import Reason, RecoveredDetails, StaleDetails
from monitor.core.schedule import NEVER, epoch, from_epoch, iso

#: Stale means strictly past the bound: wake just after it.
_EPSILON = timedelta(milliseconds=1)


@dataclass
class FreshnessTrack:
    """State of one freshness batch."""

    batch: str
    freshness: timedelta
    clock_start: datetime
    walked_to: datetime
    last_success: datetime | None = None
    pending: dict[str, datetime] = field(default_factory=dict)
    seen: dict[str, datetime] = field(default_factory=dict)
    incident: Incident | None = None
    #: Why each judgement went as it did, since the engine last took them (not saved).
    reasons: list[Reason] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def starting(cls, batch: str, freshness: timedelta, at: datetime) -> FreshnessTrack:
        return cls(batch=batch, freshness=freshness, clock_start=at, walked_to=at)

    def stale_at(self) -> datetime:
        """The instant after which the batch is stale unless a success arrives."""
        return (self.last_success or self.clock_start) + self.freshness

    def due(self) -> datetime:
        """The earliest horizon at which `advance` has something to do (always after the
        walk: a success that arrived late can put the stale instant behind it, and the
        walk then opens the spell at its next step)."""
        stale = self.stale_at() + _EPSILON if self.incident is None else NEVER
        due = min(stale, min(self.pending.values(), default=NEVER))
        return max(due, self.walked_to + _EPSILON)

    def changes_nothing(self, uid: str, at: datetime) -> bool:
        """Whether a success can change nothing: seen already, or walked and no newer than
        the last success (so it can neither move the stale instant nor end a spell)."""
        if uid in self.seen or uid in self.pending:
            return uid in self.seen or self.pending[uid] <= at
        return at <= self.walked_to and self.last_success is not None and at <= self.last_success

    def completed(self, uid: str, at: datetime) -> list[Action]:
        if uid in self.seen or uid in self.pending:
            if uid in self.pending:
                self.pending[uid] = min(self.pending[uid], at)
            return []
        if at > self.walked_to:
            self.pending[uid] = at
            return []
        return self._succeeded(uid, at)

    def advance(self, horizon: datetime) -> list[Action]:
        if horizon <= self.walked_to:
            return []
        actions: list[Action] = []
        due = sorted((at, uid) for uid, at in self.pending.items() if at <= horizon)
        for at, uid in due:
            del self.pending[uid]
            actions += self._maybe_stale(at)
            actions += self._succeeded(uid, at)
        actions += self._maybe_stale(horizon)
        self.walked_to = horizon
        return actions

    def rebound(self, freshness: timedelta) -> FreshnessTrack:
        """The same batch under a new bound: its last success, clock and open incident kept."""
        return FreshnessTrack(
            batch=self.batch,
            freshness=freshness,
            clock_start=self.clock_start,
            walked_to=self.walked_to,
            last_success=self.last_success,
            pending=dict(self.pending),
            seen=dict(self.seen),
            incident=self.incident,
        )

    def _maybe_stale(self, now: datetime) -> list[Action]:
        """Open one incident per spell when `now` is past the stale instant."""
        since = self.stale_at()
        if self.incident is not None or now <= since:
            return []
        self.incident = Incident(
            kind="stale",
            batch=self.batch,
            key=f"stale:{self.batch}@{iso(since)}",
            opened_at=since,
            first=since,
            latest=since,
        )
        self.reasons.append("missed")
        details: StaleDetails = {
            "last_success": iso(self.last_success),
            "freshness_seconds": int(self.freshness.total_seconds()),
            "stale_since": iso(since),
        }
        return [
            Post(kind="stale", batch=self.batch, key=self.incident.key, at=since, details=details)
        ]

    def _succeeded(self, uid: str, at: datetime) -> list[Action]:
        self.seen[uid] = at
        if self.last_success is not None and at <= self.last_success:
            return []
        self.last_success = at
        if self.incident is not None and at <= self.incident.opened_at:
            return []  # a success from before the spell (delivered late) does not end it
        incident, self.incident = self.incident, None
        if incident is None:
            return []
        self.reasons.append("recovered")
        return [incident.resolved(at, RecoveredDetails(job_uid=uid))]

    def prune(self) -> None:
        """Successes older than the last one can never change anything again."""
        floor = self.last_success or self.clock_start
        self.seen = {uid: at for uid, at in self.seen.items() if at >= floor}

    def to_json(self) -> dict[str, Any]:
        """Compact: epoch seconds, one-letter keys. c: clock start, w: walked to,
        l: last success, p: pending {uid: at}, s: seen {uid: at}, i: open incident."""
        data: dict[str, Any] = {"c": epoch(self.clock_start), "w": epoch(self.walked_to)}
        if self.last_success is not None:
            data["l"] = epoch(self.last_success)
        if self.pending:
            data["p"] = {uid: epoch(at) for uid, at in self.pending.items()}
        if self.seen:
            data["s"] = {uid: epoch(at) for uid, at in self.seen.items()}
        if self.incident is not None:
            data["i"] = self.incident.to_json()
        return data

    @classmethod
    def from_json(cls, batch: str, freshness: timedelta, data: dict[str, Any]) -> FreshnessTrack:
        last = data.get("l")
        incident = data.get("i")
        return cls(
            batch=batch,
            freshness=freshness,
            clock_start=from_epoch(data["c"]),
            walked_to=from_epoch(data["w"]),
            last_success=None if last is None else from_epoch(last),
            pending={str(uid): from_epoch(at) for uid, at in (data.get("p") or {}).items()},
            seen={str(uid): from_epoch(at) for uid, at in (data.get("s") or {}).items()},
            incident=Incident.from_json(batch, incident) if incident else None,
        )
