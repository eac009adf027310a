"""When the pipeline saves its state: soon after a change, rarely for the clock alone.

A change that matters (a fact that moved a track, an alert) is saved about `delay` after
it, coalescing the changes in between into one write. A fact that only moved the clock
(a tick or a watermark that decided nothing) is saved at most every `clock_interval`:
with a ConfigMap store a save is an API write, and losing one costs a restart only
re-judging from a slightly older watermark, with the Jobs it re-lists.

While the start-up list is delivered (`hold`, at most `hold_limit`), a change that posted
nothing is not saved: a crash then loses only what the next start derives again from the
same list, and a save would compete with the list for the interpreter (measured: the one
save in 30 that took over 50 ms). What posts is saved as ever; the rest waits for `release`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

SAVE_DELAY = timedelta(seconds=1)
CLOCK_SAVE_SECONDS = 60.0
#: The longest start-up list whose changes wait for it (a cluster never listed waits no more).
HOLD_SECONDS = 120.0


class SavePolicy:
    """Tracks unsaved changes and whether a save is already scheduled."""

    def __init__(
        self,
        *,
        delay: timedelta = SAVE_DELAY,
        clock_interval: float = CLOCK_SAVE_SECONDS,
        hold_limit: float = HOLD_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay = delay
        self._clock_interval = clock_interval
        self._hold_limit = hold_limit
        self._monotonic = monotonic
        self.dirty = False
        self._scheduled = False
        self._saved_at = monotonic()
        self._held_until: float | None = None

    def hold(self) -> None:
        """From now until `release` (or `hold_limit`), changes that posted nothing wait."""
        self._held_until = self._monotonic() + self._hold_limit

    def release(self) -> None:
        """The start-up list is delivered: what waited is saved with the next change."""
        self._held_until = None

    @property
    def holding(self) -> bool:
        return self._held_until is not None and self._monotonic() < self._held_until

    def changed(self, *, clock_only: bool, posted: bool = True) -> bool:
        """Note a change (`posted`: it made actions); True if a save should be scheduled
        now (none is pending)."""
        if self.holding and not posted:
            self.dirty = True
            return False
        waited = self.dirty and not self._scheduled  # held back until now
        recent = self._monotonic() - self._saved_at < self._clock_interval
        if clock_only and recent and not waited:
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
