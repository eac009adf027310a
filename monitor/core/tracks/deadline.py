"""One deadline batch's judgement: Dk is met iff some success completed inside its window.

The window of Dk is `(Dk - window, Dk + grace]`, or `(Dk-1 + grace, Dk + grace]`. One
completion meets every deadline whose window holds it, and nothing is "consumed", so the
outcome is a function of the *set* of known successes: the order and repetition in which
sources deliver them cannot matter, and a reload can re-judge from the same successes.

Dk is decided once the horizon (min of now and the run sources' watermark) reaches
Dk + grace. Successes and decision points are walked in time order (a success first on a
tie) only for what depends on order: incidents. Misses found in one walk are coalesced —
the first opens an incident (one post), the rest edit it — and a success after the
incident's first miss resolves it (and still meets every window that holds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core.facts import Action, Post
from monitor.core.incidents import Incident
from monitor.core.kinds import MissedDeadlineDetails, Reason, RecoveredDetails
from monitor.core.schedule import NEVER, DeadlineRule, epoch, from_epoch, iso

_TICK = timedelta(microseconds=1)
#: Successes kept beyond what an undecided window needs, so that a reload that widens a
#: window (or re-times the batch) re-judges from the recent ones.
KEPT_SUCCESSES = 2
#: Decided deadlines remembered for the on-time rate.
RECORD_LENGTH = 30


@dataclass
class DeadlineTrack:
    """State of one deadline batch; see the module docstring for the rules."""

    batch: str
    rule: DeadlineRule
    decided_through: datetime
    walked_to: datetime
    successes: dict[str, datetime] = field(default_factory=dict)
    incident: Incident | None = None
    last_success: datetime | None = None
    #: The last `RECORD_LENGTH` decided deadlines, oldest first: "1" met, "0" missed.
    record: str = ""
    #: Why each judgement went as it did, since the engine last took them (not saved).
    reasons: list[Reason] = field(default_factory=list, repr=False, compare=False)
    _upcoming: datetime | None = field(default=None, repr=False, compare=False)
    #: The latest walked success, NEVER when there is none (None: not computed since the
    #: successes or the walk last changed).
    _latest_walked: datetime | None = field(default=None, repr=False, compare=False)

    @property
    def upcoming(self) -> datetime:
        """The first undecided deadline (cached: cron arithmetic is the costly part)."""
        if self._upcoming is None or self._upcoming <= self.decided_through:
            self._upcoming = self.rule.cron.next_after(self.decided_through)
        return self._upcoming

    @classmethod
    def starting(cls, batch: str, rule: DeadlineRule, at: datetime) -> DeadlineTrack:
        """A batch judged from `at` on: only deadlines whose Dk + grace is after `at` count.

        Successes already known (a reload) or delivered later (a relist) that lie in the
        first windows still count: nothing before `at` is forgotten, only not alerted.
        """
        first = rule.cron.next_after(at - rule.grace)
        return cls(
            batch=batch,
            rule=rule,
            decided_through=rule.cron.previous_before(first),
            walked_to=at,
            _upcoming=first,
        )

    def retimed(self, rule: DeadlineRule) -> DeadlineTrack:
        """This batch under a new rule (grace, window, zone, cron): deadlines already decided
        stay decided, known successes and the open incident are kept, and only deadlines
        not yet decided are judged under the new rule."""
        return DeadlineTrack(
            batch=self.batch,
            rule=rule,
            decided_through=self.decided_through,
            walked_to=self.walked_to,
            successes=dict(self.successes),
            incident=self.incident,
            last_success=self.last_success,
            record=self.record,
        )

    def on_time_rate(self) -> float | None:
        """Met / decided over the remembered deadlines (None before the first decision)."""
        return self.record.count("1") / len(self.record) if self.record else None

    # -- facts -----------------------------------------------------------------------

    def changes_nothing(self, uid: str, at: datetime) -> bool:
        """Whether a success (typically relisted after a restart) can change nothing: known
        already, or walked, no newer than the latest walked success (which then meets every
        undecided window this one could), and unable to resolve the open incident."""
        known = self.successes.get(uid)
        if known is not None and known <= at:
            return True
        if at > self.walked_to:
            return False
        if self.incident is not None and at > self.incident.opened_at:
            return False
        if self._latest_walked is None:
            walked = (t for t in self.successes.values() if t <= self.walked_to)
            self._latest_walked = max(walked, default=NEVER)  # NEVER: none walked yet
        return self._latest_walked != NEVER and at <= self._latest_walked

    def completed(self, uid: str, at: datetime) -> list[Action]:
        """A successful completion of a run of this batch (any number of times)."""
        known = self.successes.get(uid)
        if known is not None and known <= at:
            return []
        self.successes[uid] = at
        self._latest_walked = None
        if self.last_success is None or at > self.last_success:
            self.last_success = at
        if at <= self.walked_to:  # behind the walk: a relist, or a source that broke its promise
            return self._recover(at, uid)
        return []

    def advance(self, horizon: datetime) -> list[Action]:
        """Walk the timeline up to `horizon`: every point at or before it is final."""
        rule = self.rule
        ahead = sorted((at, uid) for uid, at in self.successes.items() if self.walked_to < at)
        ahead = [(at, uid) for at, uid in ahead if at <= horizon]
        actions: list[Action] = []
        misses: list[datetime] = []
        index = 0
        previous: datetime | None = None  # the deadline judged just before, in this walk
        while (decision := rule.decision_instant(self.upcoming)) <= horizon:
            while index < len(ahead) and ahead[index][0] <= decision:
                actions += self._missed(misses) + self._recover(*ahead[index])
                index += 1
            deadline = self.upcoming
            self.decided_through = deadline
            met = self._met(deadline, previous)
            if not met:
                misses.append(deadline)
            else:
                self.reasons.append("met")
            self.record = (self.record + ("1" if met else "0"))[-RECORD_LENGTH:]
            previous = deadline
        for at, uid in ahead[index:]:
            actions += self._missed(misses) + self._recover(at, uid)
        actions += self._missed(misses)
        self.walked_to = max(self.walked_to, horizon)
        self._latest_walked = None
        return actions

    # -- the rules ---------------------------------------------------------------------

    def _met(self, deadline: datetime, previous: datetime | None = None) -> bool:
        """Whether a known success lies in the window of `deadline`; `previous` (the
        deadline just before it, when known) spares a backwards cron walk."""
        rule = self.rule
        if previous is not None and rule.window is None:
            start, end = previous + rule.grace, deadline + rule.grace
        else:
            start, end = rule.window_of(deadline)
        return any(start < at <= end for at in self.successes.values())

    def _missed(self, deadlines: list[datetime]) -> list[Action]:
        """Open the incident with the first of `deadlines`, or edit it; empties the list."""
        if not deadlines:
            return []
        missed = list(deadlines)
        deadlines.clear()
        if self.incident is not None:
            self.reasons += ["repeat"] * len(missed)
            return [self.incident.grown(missed, self._details(self.incident.first))]
        self.reasons.append("missed")
        self.reasons += ["repeat"] * (len(missed) - 1)
        first = missed[0]
        self.incident = Incident(
            kind="missed_deadline",
            batch=self.batch,
            key=self.key_of(first),
            opened_at=self.rule.decision_instant(first),
            first=first,
            latest=missed[-1],
            missed=len(missed),
            zone=self.rule.cron.tz.key,
        )
        details: MissedDeadlineDetails = {**self._details(first), **self.incident.summary()}
        return [
            Post(
                kind="missed_deadline",
                batch=self.batch,
                key=self.incident.key,
                at=self.incident.opened_at,
                details=details,
            )
        ]

    def _recover(self, at: datetime, uid: str) -> list[Action]:
        incident = self.incident
        if incident is None or at <= incident.opened_at:
            return []
        self.incident = None
        self.reasons.append("recovered")
        local = self.rule.cron.local
        details: RecoveredDetails = {
            "deadline": iso(local(incident.latest)),
            "first_deadline": iso(local(incident.first)),
            "timezone": self.rule.cron.tz.key,
            "job_uid": uid,
        }
        return [incident.resolved(local(at), details)]

    def key_of(self, deadline: datetime) -> str:
        return f"{self.batch}@{iso(self.rule.cron.local(deadline))}"

    def _details(self, deadline: datetime) -> MissedDeadlineDetails:
        rule = self.rule
        local = rule.cron.local
        start, end = rule.window_of(deadline)
        return {
            "deadline": iso(local(deadline)),
            "window_start": iso(local(start)),
            "window_end": iso(local(end)),
            "grace_seconds": int(rule.grace.total_seconds()),
            "timezone": rule.cron.tz.key,
            "last_success": iso(local(self.last_success) if self.last_success else None),
        }

    # -- bookkeeping -------------------------------------------------------------------

    def next_decision(self) -> datetime:
        return self.rule.decision_instant(self.upcoming)

    def due(self) -> datetime:
        """The earliest horizon at which `advance` has something to do."""
        ahead = (at for at in self.successes.values() if at > self.walked_to)
        return min(self.next_decision(), min(ahead, default=NEVER))

    def met_deadline(self, deadline: datetime) -> bool:
        """Whether a known success lies in the window of `deadline`."""
        return self._met(deadline)

    def met_upcoming(self) -> bool:
        """Whether a known success already meets the first undecided deadline."""
        return self._met(self.upcoming)

    def prune(self) -> None:
        """Keep the successes not yet walked and the latest `KEPT_SUCCESSES` walked ones.

        That is enough for every undecided deadline: its window ends after the walk, so if
        any walked success lies inside it, the latest walked success does too. The older
        ones give a reload that re-times the batch some history to re-judge from.
        """
        walked = sorted((at, uid) for uid, at in self.successes.items() if at <= self.walked_to)
        kept = {uid for _, uid in walked[-KEPT_SUCCESSES:]}
        self.successes = {
            uid: at for uid, at in self.successes.items() if at > self.walked_to or uid in kept
        }

    def to_json(self) -> dict[str, Any]:
        """Compact: epoch seconds, one-letter keys (thousands of batches are saved often).

        d: decided through, w: walked to, s: successes not yet walked {uid: at}, k: times of
        the walked ones (their uids no longer matter: they are never walked again), i: open
        incident, l: last success, o: the outcome record as the bits of an int after a leading 1.
        """
        walked = self.walked_to
        data: dict[str, Any] = {
            "d": epoch(self.decided_through),
            "w": epoch(walked),
            "k": sorted({epoch(at) for at in self.successes.values() if at <= walked}),
        }
        ahead = {uid: epoch(at) for uid, at in self.successes.items() if at > walked}
        if ahead:
            data["s"] = ahead
        if self.incident is not None:
            data["i"] = self.incident.to_json()
        if self.last_success is not None:
            data["l"] = epoch(self.last_success)
        if self.record:
            data["o"] = int("1" + self.record, 2)  # a leading 1 keeps the leading outcomes
        return data

    @classmethod
    def from_json(cls, batch: str, rule: DeadlineRule, data: dict[str, Any]) -> DeadlineTrack:
        incident = data.get("i")
        last = data.get("l")
        return cls(
            batch=batch,
            rule=rule,
            decided_through=from_epoch(data["d"]),
            walked_to=from_epoch(data["w"]),
            successes={
                **{f"walked@{at}": from_epoch(at) for at in data["k"]},
                **{str(uid): from_epoch(at) for uid, at in (data.get("s") or {}).items()},
            },
            incident=Incident.from_json(batch, incident) if incident else None,
            last_success=None if last is None else from_epoch(last),
            record=_record(data.get("o")),
        )


def _record(saved: Any) -> str:
    """The outcome record from its saved int (anything else: an empty record)."""
    if not isinstance(saved, int) or isinstance(saved, bool) or saved < 2:
        return ""
    return bin(saved)[3:][-RECORD_LENGTH:]
