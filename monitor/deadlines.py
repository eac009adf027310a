"""One deadline batch's judgement, replayed on a merged timeline so order never matters.

Facts arrive in any order and more than once, but the outcome must be a function of the
*set* of completions the sources have delivered. So this track keeps completions pending
until the horizon (min of now and the Kubernetes watermark) passes them, then walks the
timeline in time order, merging two kinds of points:

* a successful completion at `t`: if a `missed_deadline` alert is open, it resolves all
  open alerts (`recovered`) and counts for nothing else; otherwise it satisfies the earliest
  undecided, unsatisfied deadline whose window holds `t` (or is dropped);
* a decision point `Dk + grace`: `Dk` is satisfied, or it is alerted.

On a tie a completion goes first: windows are closed at `Dk + grace`. A completion that
arrives with `t` already behind the walked timeline (a source broke its watermark promise,
or the batch just started) still resolves open alerts whose window began before it, or
satisfies an undecided deadline whose window holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.facts import Action, Post, Resolve
from monitor.schedule import NEVER, DeadlineRule, iso, parse_instant, parse_iso

_TICK = timedelta(microseconds=1)


@dataclass
class OpenMiss:
    """A posted `missed_deadline` alert still waiting for a late completion."""

    deadline: datetime
    window_start: datetime


@dataclass
class DeadlineTrack:
    """State of one deadline batch; see the module docstring for the rules."""

    batch: str
    rule: DeadlineRule
    decided_through: datetime
    walked_to: datetime
    pending: dict[str, datetime] = field(default_factory=dict)
    consumed: dict[str, datetime] = field(default_factory=dict)
    satisfied: dict[datetime, str] = field(default_factory=dict)
    open: dict[str, OpenMiss] = field(default_factory=dict)
    last_success: datetime | None = None
    _upcoming: datetime | None = field(default=None, repr=False, compare=False)

    @property
    def upcoming(self) -> datetime:
        """The first undecided deadline (cached: cron arithmetic is the costly part)."""
        if self._upcoming is None or self._upcoming <= self.decided_through:
            self._upcoming = self.rule.cron.next_after(self.decided_through)
        return self._upcoming

    @classmethod
    def starting(cls, batch: str, rule: DeadlineRule, at: datetime) -> DeadlineTrack:
        """A batch judged from `at` on: no deadline at or before `at` is ever alerted.

        Completions are walked from the first undecided window's start, so ones that
        happened shortly before `at` still satisfy the first deadline after it.
        """
        first = rule.cron.next_after(at)
        first_window_start, _ = rule.window_of(first)
        track = cls(
            batch=batch, rule=rule, decided_through=at, walked_to=min(at, first_window_start)
        )
        track._upcoming = first
        return track

    # -- facts -----------------------------------------------------------------------

    def completed(self, uid: str, at: datetime) -> list[Action]:
        """A successful completion of a Job of this batch (any number of times)."""
        if uid in self.consumed:
            return []
        if at > self.walked_to:
            known = self.pending.get(uid)
            self.pending[uid] = at if known is None else min(known, at)
            return []
        return self._late(uid, at)

    def advance(self, horizon: datetime) -> list[Action]:
        """Walk the timeline up to `horizon`: every point at or before it is final."""
        if horizon <= self.walked_to:
            return []
        rule = self.rule
        actions: list[Action] = []
        if self.pending:
            due = sorted((at, uid) for uid, at in self.pending.items() if at <= horizon)
            for at, uid in due:
                while rule.decision_instant(self.upcoming) < at:
                    actions += self._decide(self.upcoming)
                del self.pending[uid]
                actions += self._place(uid, at)
        while rule.decision_instant(self.upcoming) <= horizon:
            actions += self._decide(self.upcoming)
        self.walked_to = horizon
        return actions

    # -- the rules ---------------------------------------------------------------------

    def _place(self, uid: str, at: datetime) -> list[Action]:
        self._consume(uid, at)
        if self.open:
            return self._resolve(list(self.open), at, uid)
        deadline = self._earliest_open_window(at)
        if deadline is not None:
            self.satisfied[deadline] = uid
        return []

    def _late(self, uid: str, at: datetime) -> list[Action]:
        self._consume(uid, at)
        older = [key for key, miss in self.open.items() if miss.window_start < at]
        if older:
            return self._resolve(older, at, uid)
        deadline = self._earliest_open_window(at)
        if deadline is not None:
            self.satisfied[deadline] = uid
        return []

    def _consume(self, uid: str, at: datetime) -> None:
        self.consumed[uid] = at
        if self.last_success is None or at > self.last_success:
            self.last_success = at

    def _earliest_open_window(self, at: datetime) -> datetime | None:
        """The earliest undecided, unsatisfied deadline whose window holds `at`."""
        rule = self.rule
        candidate = rule.cron.next_after(max(self.decided_through, at - rule.grace - _TICK))
        while True:
            start, end = rule.window_of(candidate)
            if start >= at:
                return None
            if at <= end and candidate not in self.satisfied:
                return candidate
            candidate = rule.cron.next_after(candidate)

    def _decide(self, deadline: datetime) -> list[Action]:
        rule = self.rule
        self.decided_through = deadline
        if self.satisfied.pop(deadline, None) is not None:
            return []
        start, end = rule.window_of(deadline)
        local = rule.cron.local
        key = f"{self.batch}@{iso(local(deadline))}"
        self.open[key] = OpenMiss(deadline=deadline, window_start=start)
        return [
            Post(
                kind="missed_deadline",
                batch=self.batch,
                key=key,
                at=end,
                details={
                    "deadline": iso(local(deadline)),
                    "window_start": iso(local(start)),
                    "window_end": iso(local(end)),
                    "grace_seconds": int(rule.grace.total_seconds()),
                    "timezone": rule.cron.tz.key,
                    "last_success": iso(self.last_success),
                },
            )
        ]

    def _resolve(self, keys: list[str], at: datetime, uid: str) -> list[Action]:
        actions: list[Action] = []
        for key in sorted(keys, key=lambda k: self.open[k].deadline):
            miss = self.open.pop(key)
            actions.append(
                Resolve(
                    key=key,
                    kind="missed_deadline",
                    batch=self.batch,
                    at=at,
                    details={
                        "deadline": iso(self.rule.cron.local(miss.deadline)),
                        "completed_at": iso(at),
                        "late_seconds": int((at - miss.deadline).total_seconds()),
                        "timezone": self.rule.cron.tz.key,
                        "job_uid": uid,
                    },
                )
            )
        return actions

    # -- bookkeeping -------------------------------------------------------------------

    def next_decision(self) -> datetime:
        return self.rule.decision_instant(self.upcoming)

    def due(self) -> datetime:
        """The earliest horizon at which `advance` has something to do."""
        return min(self.next_decision(), min(self.pending.values(), default=NEVER))

    def prune(self) -> None:
        """Forget consumed completions that can no longer resolve or satisfy anything."""
        first_start, _ = self.rule.window_of(self.upcoming)
        floor = min([first_start, *(miss.window_start for miss in self.open.values())])
        self.consumed = {uid: at for uid, at in self.consumed.items() if at >= floor}

    def to_json(self) -> dict[str, Any]:
        return {
            "decided_through": iso(self.decided_through),
            "walked_to": iso(self.walked_to),
            "pending": {uid: iso(at) for uid, at in self.pending.items()},
            "consumed": {uid: iso(at) for uid, at in self.consumed.items()},
            "satisfied": {iso(deadline): uid for deadline, uid in self.satisfied.items()},
            "open": {
                key: [iso(miss.deadline), iso(miss.window_start)] for key, miss in self.open.items()
            },
            "last_success": iso(self.last_success),
        }

    @classmethod
    def from_json(cls, batch: str, rule: DeadlineRule, data: dict[str, Any]) -> DeadlineTrack:
        return cls(
            batch=batch,
            rule=rule,
            decided_through=parse_instant(data["decided_through"]),
            walked_to=parse_instant(data["walked_to"]),
            pending={uid: parse_instant(at) for uid, at in data["pending"].items()},
            consumed={uid: parse_instant(at) for uid, at in data["consumed"].items()},
            satisfied={parse_instant(d): uid for d, uid in data["satisfied"].items()},
            open={
                key: OpenMiss(deadline=parse_instant(d), window_start=parse_instant(s))
                for key, (d, s) in data["open"].items()
            },
            last_success=parse_iso(data["last_success"]),
        )
