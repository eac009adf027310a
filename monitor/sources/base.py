"""Run a source's `poll_once()` on its own thread, for callers without a scheduler.

The daemon schedules polls itself (APScheduler); tests and simple embeddings use this.
`poll_once()` returns the seconds until the next poll is due and must not raise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Never spin: a poll that asks for no delay still waits this long.
MIN_DELAY_SECONDS = 0.05


class PollLoop:
    """`start()` polls until `stop()`; a poll that raises is logged and retried later."""

    def __init__(self, poll: Callable[[], float], name: str, retry_after: float) -> None:
        self._poll, self._name, self._retry_after = poll, name, retry_after
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self._poll()
            except Exception:
                logger.exception("%s poll failed", self._name)
                delay = self._retry_after
            self._stopping.wait(max(delay, MIN_DELAY_SECONDS))
