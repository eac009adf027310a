"""The status snapshot the HTTP server reads, built on the engine thread on demand.

Building a snapshot walks every batch, so it is not done on every tick; a reader that
finds the snapshot older than it accepts asks for a refresh (through `request`, which
queues a chore for the engine thread) and waits, at most `wait` seconds, for the next
one to be published. Any number of readers inside one refresh share it. A snapshot
nobody asked for in `EXPIRE_SECONDS` is let go: with thousands of batches it is tens of
megabytes, and an idle daemon should not keep the last page view alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from monitor.web.server import StatusSnapshot

EXPIRE_SECONDS = 30.0


class SnapshotCache:
    """The latest published snapshot, refreshed on demand."""

    def __init__(
        self, request: Callable[[], None], clock: Callable[[], datetime], wait: float = 2.0
    ) -> None:
        self._request = request
        self._clock = clock
        self._wait = wait
        self._snapshot: StatusSnapshot | None = None
        self._published = threading.Condition()

    def publish(self, snapshot: StatusSnapshot) -> None:
        with self._published:
            self._snapshot = snapshot
            self._published.notify_all()

    def expire(self, older_than: float = EXPIRE_SECONDS) -> None:
        """Drop the snapshot if it was published more than `older_than` seconds ago."""
        with self._published:
            current = self._snapshot
            if current and (self._clock() - current.generated_at).total_seconds() > older_than:
                self._snapshot = None

    def get(self, fresh_within: float = 1.0) -> StatusSnapshot | None:
        """The latest snapshot, refreshed first if older than `fresh_within` seconds
        (None before the first one, if no refresh came in time)."""
        with self._published:
            current = self._snapshot
            age = (self._clock() - current.generated_at).total_seconds() if current else None
            if age is None or age > fresh_within:
                self._request()
                self._published.wait_for(lambda: self._snapshot is not current, self._wait)
            return self._snapshot
