"""What every source shares: the Source protocol, one backoff, supervised threads, polling.

- `Source`: what the runtime sees of a source (start, stop, synced).
- `Backoff`: exponential, capped, jittered; every retry of every source uses it, capped
  at `MAX_RETRY_SECONDS` so a source that answers again is used within that long.
- `supervised`: a source thread's body that cannot die silently; an unexpected exception
  is logged, reported, and the body restarted after a backoff.
- `PollLoop`: a source's `poll_once()` on its own thread, for callers without a scheduler
  (the daemon schedules polls itself with APScheduler; tests and embeddings use this).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

#: Never spin: a poll that asks for no delay still waits this long.
MIN_DELAY_SECONDS = 0.05
#: Retries of an unreachable service are at most this far apart (SPEC: recovery is prompt).
MAX_RETRY_SECONDS = 5.0


class Source(Protocol):
    """A source of facts: it emits them from its own threads between `start` and `stop`."""

    def start(self) -> object: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    @property
    def synced(self) -> bool:
        """It has delivered its initial view (readiness)."""
        ...


class Backoff:
    """Exponential, capped, jittered (each wait uniformly in [delay/2, delay])."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = MAX_RETRY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.maximum = initial, maximum
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        return self.rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


def supervised(
    body: Callable[[], None],
    name: str,
    stopped: threading.Event,
    on_crash: Callable[[BaseException], None],
    backoff: Backoff | None = None,
) -> Callable[[], None]:
    """A thread target that runs `body` until `stopped`, restarting it if it raises.

    `body` is expected to return only once `stopped` is set; any exception (of any type:
    a RecursionError from a deeply nested document, a bug) is logged with its traceback,
    handed to `on_crash` (which reports the source unhealthy and resets it) and the body
    is started again after a backoff. Without this, a dead reader thread would leave its
    source looking healthy while nothing is read.
    """
    delays = backoff or Backoff()

    def run() -> None:
        while not stopped.is_set():
            try:
                body()
                return
            except Exception as error:
                logger.exception("%s crashed; restarting it", name)
                try:
                    on_crash(error)
                except Exception:
                    logger.exception("%s: reporting the crash failed", name)
                stopped.wait(delays.next_delay())

    return run


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
