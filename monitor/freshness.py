"""One freshness batch's judgement: stale when no success for longer than its bound.

Like deadlines, successes are walked in time order up to the horizon, so the outcome
depends only on which successes exist. The stale instant is computed ahead
(`last success + freshness`, or from when the batch started being watched) and stamped on
the alert, Healthchecks-style: the alert says when the batch went stale, not when a loop
noticed. A success after that instant resolves the episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.facts import Action, Post, Resolve
from monitor.schedule import NEVER, iso, parse_instant, parse_iso

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
    open_key: str | None = None

    @classmethod
    def starting(cls, batch: str, freshness: timedelta, at: datetime) -> FreshnessTrack:
        return cls(batch=batch, freshness=freshness, clock_start=at, walked_to=at)

    def stale_at(self) -> datetime:
        """The instant after which the batch is stale unless a success arrives."""
        return (self.last_success or self.clock_start) + self.freshness

    def due(self) -> datetime:
        """The earliest horizon at which `advance` has something to do."""
        stale = self.stale_at() + _EPSILON if self.open_key is None else NEVER
        return min(stale, min(self.pending.values(), default=NEVER))

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

    def _maybe_stale(self, now: datetime) -> list[Action]:
        """Alert once per episode when `now` is past the stale instant."""
        since = self.stale_at()
        if self.open_key is not None or now <= since:
            return []
        self.open_key = f"stale:{self.batch}@{iso(since)}"
        return [
            Post(
                kind="stale",
                batch=self.batch,
                key=self.open_key,
                at=since,
                details={
                    "last_success": iso(self.last_success),
                    "freshness_seconds": int(self.freshness.total_seconds()),
                    "stale_since": iso(since),
                },
            )
        ]

    def _succeeded(self, uid: str, at: datetime) -> list[Action]:
        self.seen[uid] = at
        if self.last_success is not None and at <= self.last_success:
            return []
        self.last_success = at
        if self.open_key is None:
            return []
        key, self.open_key = self.open_key, None
        return [
            Resolve(
                key=key,
                kind="stale",
                batch=self.batch,
                at=at,
                details={"completed_at": iso(at), "job_uid": uid},
            )
        ]

    def prune(self) -> None:
        """Successes older than the last one can never change anything again."""
        floor = self.last_success or self.clock_start
        self.seen = {uid: at for uid, at in self.seen.items() if at >= floor}

    def to_json(self) -> dict[str, Any]:
        return {
            "clock_start": iso(self.clock_start),
            "walked_to": iso(self.walked_to),
            "last_success": iso(self.last_success),
            "pending": {uid: iso(at) for uid, at in self.pending.items()},
            "seen": {uid: iso(at) for uid, at in self.seen.items()},
            "open_key": self.open_key,
        }

    @classmethod
    def from_json(cls, batch: str, freshness: timedelta, data: dict[str, Any]) -> FreshnessTrack:
        return cls(
            batch=batch,
            freshness=freshness,
            clock_start=parse_instant(data["clock_start"]),
            walked_to=parse_instant(data["walked_to"]),
            last_success=parse_iso(data["last_success"]),
            pending={uid: parse_instant(at) for uid, at in data["pending"].items()},
            seen={uid: parse_instant(at) for uid, at in data["seen"].items()},
            open_key=data["open_key"],
        )
