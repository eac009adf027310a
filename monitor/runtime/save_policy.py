"""When the pipeline saves its state: soon after a change, rarely for the clock alone.

A change that matters (a fact that moved a track, an alert) is saved about `delay` after
it, coalescing the changes in between into one write. A fact that only moved the clock
(a tick or a watermark that decided nothing) is saved at most every `clock_interval`:
with a ConfigMap store a save is an API write, and losing one costs a restart only
re-judging from a slightly older watermark, with the Jobs it re-lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

SAVE_DELAY = timedelta(seconds=1)
CLOCK_SAVE_SECONDS = 60.0


class SavePolicy:
    """Tracks unsaved changes and whether a save is already scheduled."""

    def __init__(
        self,
        *,
        delay: timedelta = SAVE_DELAY,
        clock_interval: float = CLOCK_SAVE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay = delay
        self._clock_interval = clock_interval
        self._monotonic = monotonic
        self.dirty = False
        self._scheduled = False
        self._saved_at = monotonic()

    def changed(self, *, clock_only: bool) -> bool:
        """Note a change; True if a save should be scheduled now (none is pending)."""
        if clock_only and self._monotonic() - self._saved_at < self._clock_interval:
            return False
        self.dirty = True
        if self._scheduled:
            return False
        self._scheduled = True
        return True

    def due(self) -> bool:
        """The scheduled save fired: True if there is something to save."""
        self._scheduled = False
        return self.dirty

    def saved(self) -> None:
        self.dirty = False
        self._saved_at = self._monotonic()
