"""The Cloud Logging read quota, shared by every query the daemon sends.

`entries.list` allows 60 requests per minute per project, counted by the service over the
whole project (a person's console, other tools). The daemon's readers (tracebacks, their
follow-ups, Job events) draw from one `RequestBudget` of fewer requests per minute than
that, so together they never reach the quota: a poll that would go over stops early and
is continued by the next one (nothing is skipped: its cursor did not move past it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

#: Requests per rolling minute the daemon allows itself (of the project's 60).
REQUESTS_PER_MINUTE = 50
WINDOW_SECONDS = 60.0


class RequestBudget:
    """At most `per_minute` requests in any rolling minute."""

    def __init__(
        self,
        per_minute: int = REQUESTS_PER_MINUTE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._sent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
            self._sent.popleft()

    def take(self) -> bool:
        """Spend one request if the budget allows it now."""
        now = self._monotonic()
        self._expire(now)
        if len(self._sent) >= self.per_minute:
            return False
        self._sent.append(now)
        return True

    def seconds_until_free(self) -> float:
        """How long until `take` can succeed (0 when it can now)."""
        now = self._monotonic()
        self._expire(now)
        if len(self._sent) < self.per_minute:
            return 0.0
        return max(0.0, self._sent[0] + WINDOW_SECONDS - now)
