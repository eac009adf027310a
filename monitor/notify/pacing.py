"""When one channel may post next: Slack's pace, and a retry clock after failures.

Slack allows about one `chat.postMessage` per second per channel, with short bursts; going
faster only earns 429s, and a 429 answered with `Retry-After` stalls that channel. So each
channel has its own token bucket (`rate` posts per second, `burst` at once) and its own
capped exponential backoff: one channel's trouble never delays another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ChannelPace:
    """Pace and retry clock of one channel; times are the notifier's clock (seconds)."""

    rate: float = 1.0
    burst: int = 4
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    tokens: float = -1.0  # -1: full, set on first use
    updated: float = 0.0
    failures: int = 0
    retry_at: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
            return
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def ready_at(self, now: float, posting: bool = True) -> float:
        """The earliest instant the next request may go (`posting`: it uses the pace)."""
        ready = self.retry_at
        if posting:
            self._refill(now)
            if self.tokens < 1.0:
                ready = max(ready, now + (1.0 - self.tokens) / self.rate)
        return max(ready, now) if ready > now else now

    def sent(self, now: float) -> None:
        """A post went out: it used one token; the channel is healthy again."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1.0)
        self.failures, self.retry_at = 0, 0.0

    def failed(self, now: float, retry_after: float | None = None) -> float:
        """A request failed: back off (at least `retry_after`); returns the delay."""
        self.failures += 1
        delay = float(min(self.max_backoff, self.initial_backoff * 2.0 ** (self.failures - 1)))
        if retry_after is not None:
            delay = max(delay, retry_after)
        self.retry_at = now + delay
        return delay

    def recovered(self) -> None:
        self.failures, self.retry_at = 0, 0.0
