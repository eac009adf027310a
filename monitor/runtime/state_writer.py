"""Writes the engine's state document on a thread of its own, so a save never delays a fact.

The engine thread encodes what changed (cheap: only changed batches are re-encoded) and
hands the sections over; this thread writes them (a file with fsync, or a ConfigMap PUT
of the gzipped document: tens of milliseconds for 10,000 batches). Newer sections replace
older ones still waiting, so a slow store costs fewer writes, never a queue. A write the
store refuses is retried every `retry` seconds with whatever is newest by then; a
`StateConflict` (another replica owns the state) is not retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from monitor.runtime.configmap_store import StateConflict
from monitor.runtime.state import StateDocument, store_error_text

logger = logging.getLogger(__name__)


class StateWriter:
    """The one thread that writes a `StateDocument`; see the module docstring."""

    def __init__(
        self,
        document: StateDocument,
        *,
        retry: float,
        saved: Callable[[float, int], None],
    ) -> None:
        """`saved(seconds, size)` is called after each write that worked."""
        self._document = document
        self._retry = retry
        self._saved = saved
        self._pending: dict[str, str] = {}
        self._writing = False
        self._stopping = False
        self._abandoned = False
        self._changed = threading.Condition()
        self._failure: tuple[float, str] | None = None
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, sections: dict[str, str]) -> None:
        """Write these encoded sections soon (they replace any still waiting)."""
        with self._changed:
            if self._abandoned:
                return
            self._pending.update(sections)
            self._changed.notify_all()

    @property
    def failure(self) -> tuple[float, str] | None:
        """Since when (monotonic) writes fail, and the first error; None while they work."""
        return self._failure

    def stop(self, timeout: float) -> bool:
        """Write what is waiting (one attempt left if the store refuses), then end the
        thread; False if that did not finish within `timeout`."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abandon(self) -> None:
        """Write nothing more (a deposed leader: the new one owns the state now); a write
        already under way finishes, and the store's conflict check refuses it if late."""
        with self._changed:
            self._pending.clear()
            self._abandoned = self._stopping = True
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._stopping)
                if not self._pending:
                    return
                sections, self._pending = self._pending, {}
                stopping = self._stopping
            if not self._write(sections) and not stopping:
                with self._changed:
                    self._pending = {**sections, **self._pending}
                    self._changed.wait_for(lambda: self._stopping, self._retry)

    def _write(self, sections: dict[str, str]) -> bool:
        """One write; True unless it should be retried."""
        began = time.perf_counter()
        try:
            self._document.put_encoded(sections)
        except StateConflict as error:
            logger.error("%s; not saving (another replica owns the state now)", error)
            return True
        except Exception as error:  # the store is unreachable or refuses: retried
            text = store_error_text(error)
            if self._failure is None:
                self._failure = (time.monotonic(), text)
            logger.error("cannot save the state (%s); retrying in %.0f s", text, self._retry)
            return False
        if self._failure is not None:
            logger.info("the state is saved again")
            self._failure = None
        self._saved(time.perf_counter() - began, self._document.size)
        return True
