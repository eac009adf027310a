"""The durable outbox: alerts waiting to be delivered, and the log of what was delivered.

Every action is queued under its channel (`monitor.notify.routing` turns the core's route
into a channel and mention when it is queued), and each channel is delivered strictly in
order. Keys make it idempotent: an alert whose key is pending or
already delivered is not queued again, so replays after restarts never post twice.
A delivered alert leaves a `SentRecord` (channel ID and `ts`) that later lets its
`recovered` reply go into its thread and the alert itself be edited.

Nothing is dropped: an entry Slack refuses for good (after a plain-text retry) moves to
`dead` where it stays visible. The whole structure round-trips through `to_json` /
`from_json`, the outbox's section of the state document.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from monitor.core.facts import Action, Edit, Post, Remind, Resolve
from monitor.core.kinds import is_resolvable
from monitor.notify.routing import Address
from monitor.notify.storm import digestible

logger = logging.getLogger(__name__)

OUTBOX_VERSION = 1
#: Delivered alerts remembered for threading replies and for deduplication.
SENT_LOG_LENGTH = 500
#: Held alerts per route kept with their details (a digest shows about this many lines).
DETAILED_HELD = 100


def action_key(action: Action) -> str:
    """The key an action is queued, deduplicated and recorded under."""
    if isinstance(action, Post | Remind):
        return action.key
    if isinstance(action, Edit):
        return action.edit_key
    return action.recovered_key


def parent_key(action: Action) -> str | None:
    """The posted alert an edit, reminder or resolve belongs to (None for a post)."""
    if isinstance(action, Post):
        return None
    return action.parent if isinstance(action, Remind) else action.key


def action_to_json(action: Action) -> dict[str, Any]:
    common = {
        "key": action.key,
        "kind": action.kind,
        "batch": action.batch,
        "at": action.at.isoformat(),
        "details": dict(action.details),
    }
    if isinstance(action, Post):
        return {"type": "post", **common, **({"thread": action.thread} if action.thread else {})}
    if isinstance(action, Edit):
        return {"type": "edit", **common, "revision": action.revision}
    if isinstance(action, Remind):
        return {"type": "remind", **common, "parent": action.parent}
    return {"type": "resolve", **common}


def action_from_json(data: dict[str, Any]) -> Action:
    at = datetime.fromisoformat(data["at"])
    if data["type"] == "edit":
        return Edit(
            key=data["key"],
            kind=data["kind"],
            batch=data["batch"],
            at=at,
            revision=int(data["revision"]),
            details=data.get("details") or {},
        )
    if data["type"] == "remind":
        return Remind(
            key=data["key"],
            parent=data["parent"],
            kind=data["kind"],
            batch=data["batch"],
            at=at,
            details=data.get("details") or {},
        )
    if data["type"] == "post":
        return Post(
            kind=data["kind"],
            batch=data["batch"],
            key=data["key"],
            at=at,
            details=data.get("details") or {},
            thread=data.get("thread"),
        )
    return Resolve(
        key=data["key"],
        kind=data["kind"],
        batch=data["batch"],
        at=at,
        details=data.get("details") or {},
    )


@dataclass
class Entry:
    """One action waiting for delivery; `reply_ts` marks a resolve whose reply is posted.

    `route` is the channel it is delivered in order with; `mention` leads a post's text;
    `held_at` marks a diagnostic held for the channel's next storm digest.
    """

    seq: int
    action: Action
    route: str
    queued_at: float
    mention: str | None = None
    reply_channel: str | None = None
    reply_ts: str | None = None
    error: str | None = None
    held_at: float | None = None

    @property
    def key(self) -> str:
        return action_key(self.action)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": self.seq,
            "action": action_to_json(self.action),
            "route": self.route,
            "queued_at": self.queued_at,
        }
        for name in ("mention", "reply_channel", "reply_ts", "error", "held_at"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            seq=int(data["seq"]),
            action=action_from_json(data["action"]),
            route=str(data["route"]),
            queued_at=float(data["queued_at"]),
            mention=data.get("mention") or data["action"].get("mention"),
            reply_channel=data.get("reply_channel"),
            reply_ts=data.get("reply_ts"),
            error=data.get("error"),
            held_at=float(data["held_at"]) if data.get("held_at") is not None else None,
        )


@dataclass
class SentRecord:
    """Where a delivered message is; `alert` is kept for resolvable kinds only."""

    key: str
    route: str
    channel_id: str
    ts: str
    sent_at: float
    alert: Post | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "route": self.route,
            "channel_id": self.channel_id,
            "ts": self.ts,
            "sent_at": self.sent_at,
        }
        if self.alert is not None:
            data["alert"] = action_to_json(self.alert)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SentRecord:
        alert = action_from_json(data["alert"]) if data.get("alert") else None
        return cls(
            key=data["key"],
            route=data["route"],
            channel_id=data["channel_id"],
            ts=data["ts"],
            sent_at=float(data["sent_at"]),
            alert=alert if isinstance(alert, Post) else None,
        )


@dataclass
class Outbox:
    """Pending entries per route, delivered records, and dead letters. Not thread-safe."""

    pending: list[Entry] = field(default_factory=list)
    sent: OrderedDict[str, SentRecord] = field(default_factory=OrderedDict)
    dead: list[Entry] = field(default_factory=list)
    next_seq: int = 1
    #: thread key -> (route, channel ID, ts) of the thread's first message.
    threads: OrderedDict[str, tuple[str, str, str]] = field(default_factory=OrderedDict)
    #: Saved records `from_json` could not read and skipped.
    unreadable: int = 0
    _held_count: dict[str, int] = field(default_factory=dict, repr=False)
    #: Indexes kept beside the lists, so a storm of thousands stays O(1) per alert:
    #: pending entries by key, dead letters' keys, and how many pending posts each
    #: (thread, route) has.
    _by_key: dict[str, Entry] = field(default_factory=dict, repr=False)
    _dead_keys: set[str] = field(default_factory=set, repr=False)
    _pending_threads: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def knows(self, key: str) -> bool:
        return key in self.sent or key in self._by_key or key in self._dead_keys

    def _queued(self, entry: Entry) -> None:
        self.pending.append(entry)
        self._by_key[entry.key] = entry
        thread = _thread(entry)
        if thread is not None:
            self._pending_threads[thread] = self._pending_threads.get(thread, 0) + 1

    def _unindexed(self, entry: Entry) -> None:
        self._by_key.pop(entry.key, None)
        thread = _thread(entry)
        if thread is not None:
            left = self._pending_threads.get(thread, 1) - 1
            if left > 0:
                self._pending_threads[thread] = left
            else:
                self._pending_threads.pop(thread, None)

    def _dequeued(self, entry: Entry) -> None:
        self.pending.remove(entry)
        self._unindexed(entry)

    def add(
        self, action: Action, address: Address | None, default_route: str, now: float
    ) -> Entry | None:
        """Queue `action` (a post at `address`); None when its key is already pending,
        delivered or dead."""
        if self.knows(action_key(action)):
            return None
        route = self.route_of(action, address, default_route)
        mention = address.mention if address is not None else None
        entry = Entry(self.next_seq, action, route, now, mention)
        self.next_seq += 1
        self._queued(entry)
        return entry

    def route_of(self, action: Action, address: Address | None, default_route: str) -> str:
        """A post goes to its address; an edit, reminder or resolve follows its alert, so it
        is never sent before it."""
        parent = parent_key(action)
        if parent is None:
            return (address.channel if address is not None else None) or default_route
        record = self.sent.get(parent)
        if record is not None:
            return record.route
        alert = self._by_key.get(parent)
        return alert.route if alert is not None else default_route

    def edited(self, key: str, details: dict[str, Any]) -> None:
        """The delivered alert `key` now reads with `details` (a later resolve re-renders it)."""
        record = self.sent.get(key)
        if record is not None and record.alert is not None:
            record.alert = replace(record.alert, details=details)

    def head(self, route: str) -> Entry | None:
        """The entry `route` delivers next: its first SLA entry (an SLA alert, or an edit,
        reminder or resolve of one) ahead of diagnostics, else its first diagnostic that is
        not held for a digest. Each of the two lines stays in order."""
        first: Entry | None = None
        for entry in self.pending:
            if entry.route != route or entry.held_at is not None:
                continue
            if not _diagnostic(entry.action):
                return entry
            if first is None:
                first = entry
        return first

    def routes(self) -> list[str]:
        """Every route with something pending (held entries included)."""
        return list(dict.fromkeys(entry.route for entry in self.pending))

    def held(self, route: str) -> list[Entry]:
        return [e for e in self.pending if e.route == route and e.held_at is not None]

    def hold(self, entry: Entry, now: float) -> None:
        """Hold `entry` for its route's digest. Past `DETAILED_HELD` held entries in one
        route, it keeps only its kind, batch and key — all a digest lists beyond the lines
        it has room for — so a storm of 10,000 alerts still fits the 1 MiB state store."""
        entry.held_at = now
        self._held_count[entry.route] = self._held_count.get(entry.route, 0) + 1
        if self._held_count[entry.route] > DETAILED_HELD and isinstance(entry.action, Post):
            entry.action = replace(entry.action, details={})

    def released(self, route: str) -> None:
        """The route's held entries went out in a digest."""
        self._held_count.pop(route, None)

    def is_reply(self, post: Post, route: str) -> bool:
        """Whether `post` will be a reply in its thread (its thread has a first message,
        delivered or pending in the same route)."""
        if post.thread is None:
            return False
        known = self.threads.get(post.thread)
        if known is not None:
            return known[0] == route
        return (post.thread, route) in self._pending_threads

    def threaded(self, thread: str, route: str, channel_id: str, ts: str) -> None:
        self.threads[thread] = (route, channel_id, ts)
        self.threads.move_to_end(thread)
        while len(self.threads) > SENT_LOG_LENGTH:
            self.threads.popitem(last=False)

    def thread_of(self, post: Post, route: str) -> tuple[str, str] | None:
        """(channel ID, ts) of the first message of `post`'s thread in `route`, if any."""
        known = self.threads.get(post.thread) if post.thread else None
        if known is None or known[0] != route:
            return None
        return known[1], known[2]

    def delivered(self, entry: Entry, channel_id: str, ts: str, now: float) -> None:
        self._dequeued(entry)
        self._record(entry, channel_id, ts, now)

    def delivered_together(
        self, entries: list[Entry], channel_id: str, ts: str, now: float
    ) -> None:
        """Entries delivered as one message (a digest), removed in one pass."""
        gone = {id(entry) for entry in entries}
        self.pending = [entry for entry in self.pending if id(entry) not in gone]
        for entry in entries:
            self._unindexed(entry)
            self._record(entry, channel_id, ts, now)

    def _record(self, entry: Entry, channel_id: str, ts: str, now: float) -> None:
        alert = entry.action
        keep = alert if isinstance(alert, Post) and is_resolvable(alert.kind) else None
        self.sent[entry.key] = SentRecord(entry.key, entry.route, channel_id, ts, now, keep)
        while len(self.sent) > SENT_LOG_LENGTH:
            self.sent.popitem(last=False)

    def bury(self, entry: Entry, error: str) -> None:
        self._dequeued(entry)
        entry.error = error
        self.dead.append(entry)
        self._dead_keys.add(entry.key)

    def oldest_queued_at(self) -> float | None:
        return min((entry.queued_at for entry in self.pending), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": OUTBOX_VERSION,
            "next_seq": self.next_seq,
            "pending": [entry.to_json() for entry in self.pending],
            "sent": [record.to_json() for record in self.sent.values()],
            "dead": [entry.to_json() for entry in self.dead],
            "threads": [[key, *where] for key, where in self.threads.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Outbox:
        """The saved outbox; malformed records are logged, skipped and counted in
        `unreadable` (a document that is no outbox at all raises TypeError)."""
        outbox = cls()
        if not data:
            return outbox
        if not isinstance(data, dict):
            raise TypeError(f"the outbox is a {type(data).__name__}, not an object")
        for name, parse, target in (
            ("pending", Entry.from_json, outbox.pending),
            ("dead", Entry.from_json, outbox.dead),
        ):
            for item in data.get(name) or []:
                try:
                    target.append(parse(item))
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    logger.error("skipping malformed outbox %s entry %r: %s", name, item, error)
                    outbox.unreadable += 1
        for item in data.get("sent") or []:
            try:
                record = SentRecord.from_json(item)
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                logger.error("skipping malformed sent record %r: %s", item, error)
                outbox.unreadable += 1
                continue
            outbox.sent[record.key] = record
        for item in data.get("threads") or []:
            try:
                key, route, channel_id, ts = (str(part) for part in item)
            except (TypeError, ValueError) as error:
                logger.error("skipping malformed thread record %r: %s", item, error)
                outbox.unreadable += 1
                continue
            outbox.threads[key] = (route, channel_id, ts)
        highest = max((entry.seq for entry in outbox.pending + outbox.dead), default=0)
        outbox.next_seq = max(int(data.get("next_seq") or 1), highest + 1)
        entries = sorted(outbox.pending, key=lambda entry: entry.seq)
        outbox.pending = []
        for entry in entries:
            outbox._queued(entry)
        outbox._dead_keys = {entry.key for entry in outbox.dead}
        for entry in outbox.pending:
            if entry.held_at is not None:
                outbox._held_count[entry.route] = outbox._held_count.get(entry.route, 0) + 1
        return outbox


def _thread(entry: Entry) -> tuple[str, str] | None:
    action = entry.action
    if isinstance(action, Post) and action.thread is not None:
        return (action.thread, entry.route)
    return None


def _diagnostic(action: Action) -> bool:
    """A post of a kind a digest may fold (failures, tracebacks): it yields to SLA entries."""
    return isinstance(action, Post) and digestible(action.kind)
