"""The Kubernetes source: every batch/v1 Job change, as facts, with a trustworthy watermark.

One reflector thread per scope (all namespaces, or each configured namespace) lists and
watches Jobs (`reflector`) and emits `JobSeen`/`JobGone`. This module adds what the
engine needs to judge deadlines safely:

- `Watermark(kubernetes, t)`: every Job change up to `t` has been emitted. It advances to
  now - `watermark_margin` only while every reflector has listed, holds an open watch and
  has drained it (no bytes for `settle` seconds); it freezes while any scope is
  disconnected, backing off or relisting, and never goes backwards.
- `SourceHealth(kubernetes, …)`: reachable or not (with the last successful contact),
  emitted on each change; 401/403 also log which permission is missing.

Facts go to `emit` from the source's threads, serialized by one lock: a Watermark is
never emitted between a change being read and its facts being emitted.

`relists` and `watch_restarts` count, for metrics, full lists and resumed watches. Each
reflector's counters are plain ints written by its own thread only, so reading them from
any thread is safe (an int read is atomic; there is a single writer).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient, BatchV1Api

from monitor.core.facts import KUBERNETES, Fact, SourceHealth, Watermark
from monitor.sources.kube.reflector import JobReflector, ReflectorSettings

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KubeJobSource:
    """List+watch Jobs in `namespaces` (empty: all) and emit facts until `stop()`."""

    def __init__(
        self,
        api_client: ApiClient,
        emit: Callable[[Fact], None],
        *,
        namespaces: Sequence[str] = (),
        page_size: int = 500,
        silence_timeout: float = 70.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        watermark_margin: timedelta = timedelta(seconds=2),
        watermark_interval: float = 0.5,
        settle: float = 0.2,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        prefetch_pages: bool = True,
        relax_gc_while_listing: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self._emit = emit
        self._clock = clock
        self._margin = watermark_margin
        self._interval = watermark_interval
        self._settle = settle
        self._stopped = threading.Event()
        self._rng = rng or random.Random()
        settings = ReflectorSettings(
            page_size=page_size,
            silence_timeout=silence_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            prefetch_pages=prefetch_pages,
            relax_gc_while_listing=relax_gc_while_listing,
        )
        batch = BatchV1Api(api_client)
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self._reflectors = [
            JobReflector(batch, scope, self, settings, self._stopped, self._rng) for scope in scopes
        ]
        self._threads: list[threading.Thread] = []
        self._watermark: datetime | None = None
        self._reachable: bool | None = None
        self._last_contact = clock()
        self._detail = ""

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> KubeJobSource:
        for reflector in self._reflectors:
            name = f"kube-jobs-{reflector.namespace or 'all'}"
            self._threads.append(threading.Thread(target=reflector.run, name=name, daemon=True))
        self._threads.append(
            threading.Thread(target=self._watermark_loop, name="kube-watermark", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread (open watches are cut) and wait for them."""
        self._stopped.set()
        for reflector in self._reflectors:
            reflector.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> KubeJobSource:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def synced(self) -> bool:
        """Every scope has delivered one full list (readiness)."""
        return all(reflector.synced for reflector in self._reflectors)

    @property
    def resource_versions(self) -> dict[str, str]:
        """Per scope ("" for all namespaces), the resourceVersion a watch resumes from."""
        return {r.namespace or "": r.resource_version for r in self._reflectors}

    @property
    def relists(self) -> int:
        """Full lists started, over all scopes (the initial one included), for metrics."""
        return sum(reflector.relists for reflector in self._reflectors)

    @property
    def watch_restarts(self) -> int:
        """Watch streams reopened without a list in between (after a drop, timeout, silence)."""
        return sum(reflector.watch_restarts for reflector in self._reflectors)

    @property
    def watermark(self) -> datetime | None:
        with self.lock:
            return self._watermark

    # -- what reflectors call (ReflectorSink) -------------------------------------------
    def emit(self, fact: Fact) -> None:
        with self.lock:
            self._emit(fact)

    def contact(self, ok: bool, detail: str = "") -> None:
        """Report a request's success or failure; health facts only on a change."""
        with self.lock:
            now = self._clock()
            if ok:
                self._last_contact = now
            if ok == self._reachable and (ok or detail == self._detail):
                return
            self._reachable, self._detail = ok, detail
            if ok:
                logger.info("Kubernetes API reachable")
            self._emit(
                SourceHealth(
                    source=KUBERNETES,
                    reachable=ok,
                    last_contact=self._last_contact,
                    detail=detail,
                )
            )

    # -- watermark ------------------------------------------------------------------
    def _caught_up(self) -> bool:
        settled_before = time.monotonic() - self._settle
        return all(
            reflector.synced and reflector.live and reflector.last_data <= settled_before
            for reflector in self._reflectors
        )

    def _watermark_loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.advance_watermark()

    def advance_watermark(self) -> None:
        """Emit a newer Watermark if every scope is caught up (called periodically)."""
        with self.lock:
            if not self._caught_up():
                return
            candidate = self._clock() - self._margin
            if self._watermark is not None and candidate <= self._watermark:
                return
            self._watermark = candidate
            self._emit(Watermark(source=KUBERNETES, seen_up_to=candidate))
