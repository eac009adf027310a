"""Storms become digests: past `threshold` top-level alerts per channel per window, the
rest of the diagnostics are held and posted together, once per window (SPEC "Digests").

500 tracebacks must not be 500 posts: people stop reading a channel that floods, and at
Slack's ~1 post/s a flood would delay everything behind it for minutes. Only diagnostic
kinds are held (`KindInfo.digestible`); an SLA alert is never folded into a digest, and the
notifier posts it ahead of diagnostics waiting in the same channel. Edits and thread
replies do not count towards the threshold.

The gate is pure: the notifier tells it what arrived and when, and asks when a channel's
digest is due.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.core.kinds import KINDS


def digestible(kind: str) -> bool:
    info = KINDS.get(kind)
    return info is not None and info.digestible


def digest_key(channel: str, first_held_at: float) -> str:
    """`digest:<channel>@<UTC minute of its first alert>`."""
    minute = datetime.fromtimestamp(first_held_at, UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"digest:{channel}@{minute}"


@dataclass
class StormGate:
    """Arrivals of top-level alerts per channel within the last `window` seconds."""

    threshold: int = 10
    window: float = 60.0
    #: How long a storm's first digest waits for more of the storm to arrive.
    gather: float = 5.0
    _arrivals: dict[str, deque[float]] = field(default_factory=dict)
    _last_digest: dict[str, float] = field(default_factory=dict)

    def arrived(self, channel: str, kind: str, now: float) -> bool:
        """A top-level alert of `kind` became due for `channel`: True when it is to be held
        for the channel's next digest (it still counts as an arrival)."""
        arrivals = self._arrivals.setdefault(channel, deque())
        while arrivals and arrivals[0] <= now - self.window:
            arrivals.popleft()
        arrivals.append(now)
        return len(arrivals) > self.threshold and digestible(kind)

    def digest_due(self, channel: str, first_held_at: float) -> float:
        """When the digest holding an alert held at `first_held_at` goes out: `gather`
        seconds after it (a burst of failures is one digest, seconds after it began), and
        never sooner than one window after the channel's previous digest (so a held alert
        waits at most one window, and a channel gets at most one digest per window)."""
        due = first_held_at + min(self.gather, self.window)
        last = self._last_digest.get(channel)
        return due if last is None else max(due, last + self.window)

    def digested(self, channel: str, now: float) -> None:
        self._last_digest[channel] = now
