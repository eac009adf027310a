"""The Kubernetes source: every change of the watched runs, as facts, with a watermark.

One reflector thread per resource (Jobs; Argo Workflows when enabled) and scope (all
namespaces, or each configured namespace) lists and watches (`reflector`) and emits
`JobSeen`/`JobGone`. This module adds what the engine needs to judge deadlines safely:

- `Watermark(kubernetes, t)`: every change up to `t` has been emitted. Each reflector
  has a *caught-up-to* instant, and the watermark is the oldest of them minus `margin`:
  - idle: a listed scope whose reader has been blocked reading its open watch for
    `settle` seconds with nothing arriving has delivered everything, so it is caught up
    to now (a reader still handling what it received is never idle, however long that
    takes);
  - busy (a watch that is never silent, e.g. 200 Job updates/s): a *progress probe* asks
    the server for the collection's current resourceVersion R (a one-item list) at T;
    once the watch has delivered a change or bookmark at or past R, every change before
    T has been emitted, so the scope is caught up to T. A list's resourceVersion is the
    store's revision, not the namespace's, so one probe per resource serves all its
    scopes. This needs integer resourceVersions (etcd's); a server without them falls
    back to the idle rule.
  A scope that is relisting, disconnected, backing off, expiring in a loop or whose
  reader crashed is caught up to nothing newer: the watermark freezes (and the engine
  reports the stall). It never goes backwards.
  `margin` covers `completionTime`'s truncation to whole seconds (a change at 09:00:00.7
  is stamped 09:00:00) and the watch's delivery latency under the idle rule.
  The scopes are looked at every `interval`, and also at the first instant the watermark
  can reach an instant a decision waits for (`want_watermark`: that instant plus the
  margin), which takes up to an interval off every deadline's alert.
- `SourceHealth(kubernetes, …)`: reachable or not (with the last successful contact),
  emitted on each change; 401/403 also log which permission is missing; a crashed reader
  or a relist loop is reported as unreachable too, with what happened.

Reader threads are supervised (`sources.base.supervised`): one that raises is logged,
reported, reset to relist, and restarted with backoff; it never dies silently.

Facts go to `emit` from the source's threads, serialized by one lock: a Watermark is
never emitted between a change being read and its facts being emitted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient

from monitor.core.facts import KUBERNETES, Fact, JobGone, JobSeen, SourceHealth, Watermark
from monitor.sources.base import MAX_RETRY_SECONDS, supervised
from monitor.sources.kube.reflector import Reflector, ReflectorSettings, reader_threads
from monitor.sources.kube.resources import JOBS, Item, WatchedResource

logger = logging.getLogger(__name__)
#: Looked at this long after a wanted instant plus the margin: a timer that fires a little
#: early would find the watermark just short of it, and wait a whole interval more.
_WAKE_SLACK = 0.01
#: How soon to look again when the wanted instant passed without the watermark reaching it.
_RETRY_SECONDS = 0.05


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: A probe not yet passed by every busy scope is replaced after this many seconds anyway.
PROBE_PATIENCE = 5.0


@dataclass
class _Probe:
    """A progress probe: the collection was at `version` at `at` (sent at monotonic
    `sent`); `resolved` are the scopes whose watch has delivered past it."""

    at: datetime
    version: int
    sent: float = field(default_factory=time.monotonic)
    resolved: set[str] = field(default_factory=set)


class KubeRunSource:
    """List+watch `resources` in `namespaces` (empty: all) and emit facts until `stop()`."""

    def __init__(
        self,
        api_client: ApiClient,
        emit: Callable[[Fact], None],
        *,
        resources: Sequence[WatchedResource[JobSeen]] = (JOBS,),
        namespaces: Sequence[str] = (),
        page_size: int = 500,
        silence_timeout: float = 70.0,
        backoff_initial: float = 0.5,
        backoff_max: float = MAX_RETRY_SECONDS,
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
        self._nudged = threading.Event()  # wakes the watermark thread (`want_watermark`)
        self._wanted: datetime | None = None
        self._rng = rng or random.Random()
        self._settings = settings = ReflectorSettings(
            page_size=page_size,
            silence_timeout=silence_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            prefetch_pages=prefetch_pages,
            relax_gc_while_listing=relax_gc_while_listing,
        )
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self._reflectors = [
            Reflector(api_client, resource, scope, self, settings, self._stopped, self._rng)
            for resource in resources
            for scope in scopes
        ]
        self._caught_up: dict[str, datetime | None] = {r.name: None for r in self._reflectors}
        self._probes: dict[str, _Probe] = {}  # by resource plural; watermark thread only
        self._no_progress_rule: set[str] = set()
        self._crashed: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._watermark: datetime | None = None
        self._reachable: bool | None = None
        self._last_contact = clock()
        self._detail = ""
        self.reader_restarts = 0  # reader threads restarted after a crash, for metrics
        self.watermark_checks = 0  # times the watermark was considered (tests wait on it)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> KubeRunSource:
        self._threads = reader_threads(
            self._reflectors, self._stopped, self._crashed_reader, self._settings, self._rng
        )
        watermark = supervised(
            self._watermark_loop, "Kubernetes watermark", self._stopped, on_crash=_ignore
        )
        self._threads.append(threading.Thread(target=watermark, name="kube-watermark", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread (open watches are cut) and wait for them."""
        self._stopped.set()
        self._nudged.set()
        for reflector in self._reflectors:
            reflector.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> KubeRunSource:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def synced(self) -> bool:
        """Every scope has delivered one full list (readiness)."""
        return all(reflector.synced for reflector in self._reflectors)

    @property
    def resource_versions(self) -> dict[str, str]:
        """Per reflector (`jobs/<namespace or *>`), the resourceVersion a watch resumes from."""
        return {r.name: r.resource_version for r in self._reflectors}

    @property
    def relists(self) -> int:
        """Full lists started, over all scopes (the initial one included), for metrics."""
        return sum(reflector.relists for reflector in self._reflectors)

    @property
    def watch_restarts(self) -> int:
        """Watch streams reopened without a list in between (after a drop, timeout, silence)."""
        return sum(reflector.watch_restarts for reflector in self._reflectors)

    @property
    def skipped(self) -> int:
        """Malformed objects and watch lines skipped, over all scopes, for metrics."""
        return sum(reflector.skipped for reflector in self._reflectors)

    @property
    def watermark(self) -> datetime | None:
        with self.lock:
            return self._watermark

    # -- what reflectors call (ReflectorSink) -------------------------------------------
    def emit(self, item: JobSeen) -> None:
        with self.lock:
            self._emit(item)

    def vanished(self, item: Item) -> None:
        """Only the identity is read: a run missing from a relist is known by no more."""
        with self.lock:
            self._emit(JobGone(uid=item.uid, namespace=item.namespace, name=item.name))

    def contact(self, ok: bool, detail: str = "") -> None:
        """Report a request's success or failure; health facts only on a change.

        While a crashed reader has not yet listed again, successes of the others do not
        hide it.
        """
        with self.lock:
            now = self._clock()
            if ok:
                self._last_contact = now
                if self._crashed:
                    self._crashed = {n for n in self._crashed if not self._relisted(n)}
                    if self._crashed:
                        return
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

    def _relisted(self, name: str) -> bool:
        return any(r.name == name and r.resource_version for r in self._reflectors)

    def _crashed_reader(self, reflector: Reflector[JobSeen], error: BaseException) -> None:
        """A reader raised (it was reset to relist): report it until it has listed again."""
        with self.lock:
            self._crashed.add(reflector.name)
            self.reader_restarts += 1
        detail = f"{reflector.resource.noun} reader on {reflector.scope} crashed ({error!r})"
        self.contact(False, f"{detail}; restarting it")

    # -- watermark ------------------------------------------------------------------
    def want_watermark(self, at: datetime) -> None:
        """A decision waits for the watermark to reach `at`: look at the scopes again at
        `at` plus the margin, the first instant it can, not at the next interval only.

        The thread is woken only for an instant sooner than the one it waits for and
        due within an interval: the pipeline calls this whenever its next wakeup changes
        (at start-up, per listed Job), and every look may send a progress probe.
        """
        previous, self._wanted = self._wanted, at
        soon = (at + self._margin - self._clock()).total_seconds() < self._interval
        if soon and (previous is None or at < previous):
            self._nudged.set()

    def _watermark_loop(self) -> None:
        while not self._stopped.is_set():
            self._nudged.wait(self._pause())
            self._nudged.clear()
            if not self._stopped.is_set():
                self.advance_watermark()

    def _pause(self) -> float:
        """Seconds until the next look: an interval, or less when a wanted instant nears."""
        wanted, watermark = self._wanted, self.watermark
        if wanted is None or (watermark is not None and watermark >= wanted):
            return self._interval
        until = (wanted + self._margin - self._clock()).total_seconds() + _WAKE_SLACK
        if until > 0:
            return min(self._interval, until)
        # Just missed (a busy scope resolves its probe at a later look): look again soon,
        # for up to an interval, then at the interval (a stalled watch is not polled).
        return min(self._interval, _RETRY_SECONDS) if -until < self._interval else self._interval

    def advance_watermark(self) -> None:
        """Update each scope's caught-up instant, emit a newer Watermark if the oldest of
        them moved, then send the next probe of each resource with a busy scope (called
        periodically)."""
        self.watermark_checks += 1
        settled_before = time.monotonic() - self._settle
        busy: dict[str, list[Reflector[JobSeen]]] = {}
        for reflector in self._reflectors:
            if not (reflector.synced and reflector.live):
                continue
            waiting = reflector.waiting_since
            if waiting is not None and waiting <= settled_before:
                self._caught_up[reflector.name] = self._clock()
                continue
            plural = reflector.resource.plural
            probe = self._probes.get(plural)
            applied = reflector.applied_version
            got_past = probe is not None and applied is not None and applied >= probe.version
            if probe is not None and reflector.confirmed and got_past:
                self._caught_up[reflector.name] = probe.at
                probe.resolved.add(reflector.name)
            busy.setdefault(plural, []).append(reflector)
        self._emit_watermark()
        for plural, scopes in busy.items():
            probe = self._probes.get(plural)
            waited = probe is not None and time.monotonic() - probe.sent > PROBE_PATIENCE
            if probe is None or waited or all(r.name in probe.resolved for r in scopes):
                self._probe(plural, scopes[0])

    def _emit_watermark(self) -> None:
        with self.lock:
            if any(at is None for at in self._caught_up.values()):
                return
            candidate = min(at for at in self._caught_up.values() if at is not None)
            candidate -= self._margin
            if self._watermark is not None and candidate <= self._watermark:
                return
            self._watermark = candidate
            self._emit(Watermark(source=KUBERNETES, seen_up_to=candidate))

    def _probe(self, plural: str, reflector: Reflector[JobSeen]) -> None:
        """The busy rule's next probe for `plural`, through one of its busy scopes."""
        if plural in self._no_progress_rule:
            return
        at = self._clock()
        try:
            version = reflector.current_version()
        except Exception as error:  # the reader reports the API's health; this only waits
            logger.debug("progress probe of %s failed: %r", plural, error)
            return
        if version is None:
            logger.info(
                "%s: resourceVersions are not integers; the watermark advances only "
                "when the watch is quiet",
                plural,
            )
            self._no_progress_rule.add(plural)
            return
        self._probes[plural] = _Probe(at, version)


def _ignore(_: BaseException) -> None:
    """The watermark thread's crash needs no reset: it only reads the reflectors."""
