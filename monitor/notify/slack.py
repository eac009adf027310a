"""Durable, ordered, deduplicated delivery of engine actions to Slack, one worker per channel.

    notifier = Notifier(transport, router=ConfigRouter(config), saved=doc.section("outbox"),
                        persist=lambda outbox: doc.put("outbox", outbox))
    notifier.start(); notifier.submit(actions); ...; notifier.stop()

The stages, in order: **dedup** (`submit`: a key already pending, delivered or dead is not
queued again; the outbox is persisted before `submit` returns), **digest** (`StormGate`:
past the storm threshold, a channel's diagnostics are held and posted as one digest per
window), **thread** (a run's later signals reply under its first message; an incident is
one message edited in place), **pace** (`ChannelPace`: ~1 post/s per channel, with bursts),
**retry** (the SDK's handlers, then a per-channel capped backoff for as long as Slack is
down) and **record** (the outbox's sent log and thread map, persisted after each delivery).

Each channel has its own worker thread, queue order and retry clock, so a `Retry-After` on
one channel never delays another; within a channel, SLA entries go ahead of diagnostics.
Nothing can block a channel: a layout that raises is replaced by a plain-text message,
blocks Slack refuses are resent as plain text, and an alert Slack refuses for good becomes
a dead letter (listed, counted) reported once as `monitor_degraded`
(`degraded:slack-refused@<time>`). A channel Slack refuses falls back to the default
channel with a note; a refused token marks the notifier unhealthy and keeps everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.core.facts import Action, Edit, Post
from monitor.core.kinds import DegradedDetails
from monitor.notify.delivery import DeliverySteps
from monitor.notify.outbox import Entry, Outbox
from monitor.notify.pacing import ChannelPace
from monitor.notify.render import (
    RenderSettings,
)
from monitor.notify.routing import OneChannel, Router
from monitor.notify.storm import StormGate
from monitor.notify.transport import DeliveryError, Transport

logger = logging.getLogger(__name__)

Status = Literal["ok", "retrying", "unhealthy"]


@dataclass(frozen=True, slots=True)
class NotifierHealth:
    """What the daemon exposes about delivery (status page, /metrics, monitor_degraded)."""

    status: Status
    detail: str
    reachable: bool
    last_contact: float | None  # epoch seconds of the last answer from Slack
    outbox_depth: int
    oldest_age_seconds: float
    dead_letters: int
    posted_total: int
    updated_total: int
    duplicates_total: int
    failures_total: int
    fallbacks_total: int
    last_delivery_seconds: float | None  # from submit to Slack's ok, for the last alert
    delivery_seconds_sum: float
    delivery_count: int


#: A channel's worker leaves after this long with nothing to do (a new alert restarts it).
_IDLE_SECONDS = 1.0


class Notifier(DeliverySteps):
    """The outbox, and one worker thread per channel that empties that channel's queue
    (how each action becomes Slack calls: `DeliverySteps`)."""

    def __init__(
        self,
        transport: Transport,
        *,
        router: Router | None = None,
        default_channel: str | None = None,
        settings: RenderSettings | None = None,
        saved: dict[str, Any] | Outbox | None = None,
        persist: Callable[[dict[str, Any]], None] | None = None,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        storm: StormGate | None = None,
        pace: Callable[[], ChannelPace] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._router: Router = router or OneChannel(default_channel)
        self._default = self._router.default_channel or ""
        self._settings = settings or RenderSettings()
        self._persist = persist
        self._initial_backoff, self._max_backoff = initial_backoff, max_backoff
        self._storm = storm or StormGate()
        self._new_pace = pace or (
            lambda: ChannelPace(initial_backoff=initial_backoff, max_backoff=max_backoff)
        )
        self._clock = clock
        self._outbox = saved if isinstance(saved, Outbox) else Outbox.from_json(saved)
        self._paces: dict[str, ChannelPace] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Condition()
        self._persist_lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._auth_error: str | None = None
        self._auth_failures = 0
        self._auth_retry_at = 0.0
        self._reachable = True
        self._last_contact: float | None = None
        self._counts = {"posted": 0, "updated": 0, "duplicates": 0, "failures": 0, "fallbacks": 0}
        self._latency_sum, self._latency_count = 0.0, 0
        self._last_latency: float | None = None

    # -- the daemon's side -------------------------------------------------------------

    def reroute(self, router: Router, storm: StormGate | None = None) -> None:
        """A reloaded config's routing (and storm settings), for alerts queued from now on."""
        with self._lock:
            self._router = router
            self._default = router.default_channel or ""
            if storm is not None:
                self._storm.threshold, self._storm.window = storm.threshold, storm.window

    def submit(self, actions: Iterable[Action]) -> int:
        """Queue actions (duplicates by key are ignored) and persist; returns how many queued."""
        added = 0
        with self._lock:
            now = self._clock()
            for action in actions:
                if self._queue(action, now):
                    added += 1
        if added:
            self._save()
            with self._lock:
                self._start_workers()
                self._lock.notify_all()
        return added

    def _queue(self, action: Action, now: float) -> bool:
        """Dedup and the storm gate, under the lock."""
        address = self._router.address(action.route) if isinstance(action, Post) else None
        route = self._outbox.route_of(action, address, self._default)
        reply = isinstance(action, Post) and self._outbox.is_reply(action, route)
        entry = self._outbox.add(action, address, self._default, now)
        if entry is None:
            self._counts["duplicates"] += 1
            logger.debug("already queued or delivered: %s", action.key)
            return False
        top_level = isinstance(action, Post) and not reply
        if top_level and self._storm.arrived(entry.route, action.kind, now):
            self._outbox.hold(entry, now)
            logger.info("storm in %s: %s held for the digest", entry.route, action.key)
        return True

    def snapshot(self) -> dict[str, Any]:
        """The outbox's persisted form (the `outbox` section of the state document)."""
        with self._lock:
            return self._outbox.to_json()

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._start_workers()
        threading.Thread(target=self._check_token, name="slack-token", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        """Let in-flight posts finish, then stop; pending alerts stay in the outbox."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending (dead letters aside); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._outbox.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def health(self) -> NotifierHealth:
        with self._lock:
            now = self._clock()
            oldest = self._outbox.oldest_queued_at()
            depth = len(self._outbox.pending)
            if self._auth_error is not None:
                status: Status = "unhealthy"
                detail = f"Slack refused the token ({self._auth_error}); alerts are kept"
            elif any(pace.failures for pace in self._paces.values()):
                status, detail = "retrying", "Slack deliveries are failing and being retried"
            else:
                status, detail = "ok", ""
            if self._outbox.dead:
                detail += f"; {len(self._outbox.dead)} alerts Slack refused for good"
            return NotifierHealth(
                status=status,
                detail=detail.lstrip("; "),
                reachable=self._reachable,
                last_contact=self._last_contact,
                outbox_depth=depth,
                oldest_age_seconds=0.0 if oldest is None else max(0.0, now - oldest),
                dead_letters=len(self._outbox.dead),
                posted_total=self._counts["posted"],
                updated_total=self._counts["updated"],
                duplicates_total=self._counts["duplicates"],
                failures_total=self._counts["failures"],
                fallbacks_total=self._counts["fallbacks"],
                last_delivery_seconds=self._last_latency,
                delivery_seconds_sum=self._latency_sum,
                delivery_count=self._latency_count,
            )

    # -- the workers ---------------------------------------------------------------------

    def _save(self) -> None:
        if self._persist is None:
            return
        with self._persist_lock:
            snapshot = self.snapshot()
            try:
                self._persist(snapshot)
            except Exception:
                # Delivering unsaved beats not delivering: the worst case is a repeat.
                logger.exception("saving the Slack outbox failed; delivering anyway")

    def _start_workers(self) -> None:
        """One worker per channel with something pending (under the lock)."""
        if not self._started or self._stopping:
            return
        for route in self._outbox.routes():
            if route not in self._workers:
                worker = threading.Thread(
                    target=self._work, args=(route,), name=f"slack:{route}", daemon=True
                )
                self._workers[route] = worker
                worker.start()

    def _pace(self, route: str) -> ChannelPace:
        pace = self._paces.get(route)
        if pace is None:
            pace = self._paces[route] = self._new_pace()
        return pace

    def _work(self, route: str) -> None:
        """A channel's worker: nothing may end it but `stop` or an idle channel, so a bug in
        one step is logged and retried instead of silently leaving the channel unserved."""
        try:
            self._serve(route)
        finally:
            with self._lock:
                if self._workers.get(route) is threading.current_thread():
                    del self._workers[route]
                self._start_workers()  # anything queued meanwhile gets a new worker

    def _serve(self, route: str) -> None:
        while True:
            try:
                if self._serve_once(route):
                    return
            except Exception:
                logger.exception("Slack worker for %s: unexpected error; retrying", route)
                with self._lock:
                    self._lock.wait(1.0)

    def _serve_once(self, route: str) -> bool:
        """Deliver what is due in `route`; True when the worker should end."""
        idle_since: float | None = None
        while True:
            with self._lock:
                if self._stopping:
                    return True
                job, wait = self._next_job(route)
                if job is None:
                    if not any(e.route == route for e in self._outbox.pending):
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since >= _IDLE_SECONDS:
                            return True
                    else:
                        idle_since = None
                    self._lock.wait(min(wait, _IDLE_SECONDS))
                    continue
                idle_since = None
            if isinstance(job, list):
                self._deliver_digest(route, job)
            else:
                self._deliver(job)

    def _next_job(self, route: str) -> tuple[Entry | list[Entry] | None, float]:
        """What `route` sends next (an entry, or the held entries as a digest), or None and
        how long to wait. Under the lock."""
        now = self._clock()
        if self._auth_error is not None and now < self._auth_retry_at:
            return None, self._auth_retry_at - now
        pace = self._pace(route)
        held = self._outbox.held(route)
        if held:
            assert held[0].held_at is not None
            due = self._storm.digest_due(route, held[0].held_at)
            if due <= now:
                ready = pace.ready_at(now)
                return (held, 0.0) if ready <= now else (None, ready - now)
        entry = self._outbox.head(route)
        if entry is None:
            first = held[0].held_at if held else None
            wait = self._storm.digest_due(route, first) - now if first is not None else 1.0
            return None, max(0.01, wait)
        ready = pace.ready_at(now, posting=not isinstance(entry.action, Edit))
        return (entry, 0.0) if ready <= now else (None, ready - now)

    def _check_token(self) -> None:
        try:
            who = self._transport.check()
        except DeliveryError as error:
            self._failed(None, error)
            return
        self._contact()
        logger.info("Slack: posting as %s", who)

    def _contact(self) -> None:
        with self._lock:
            self._reachable, self._last_contact = True, self._clock()
            if self._auth_error is not None:
                logger.info("Slack accepts the token again")
            self._auth_error, self._auth_failures = None, 0
            self._lock.notify_all()

    def _backoff(self, failures: int) -> float:
        return float(min(self._max_backoff, self._initial_backoff * 2 ** (failures - 1)))

    def _failed(self, route: str | None, error: DeliveryError, key: str = "") -> None:
        """Back off the channel (or everything, for auth); its entry stays first in line."""
        with self._lock:
            self._counts["failures"] += 1
            now = self._clock()
            if error.error_class == "auth":
                self._auth_failures += 1
                if self._auth_error is None:
                    logger.error(
                        "Slack refused the bot token (%s): no alert can be posted until the "
                        "token is fixed; %d alerts are kept in the outbox",
                        error.code,
                        len(self._outbox.pending),
                    )
                self._auth_error = error.code
                self._auth_retry_at = now + self._backoff(self._auth_failures)
                return
            self._reachable = error.error_class != "transient"
            if route is None:
                return
            delay = self._pace(route).failed(now, error.retry_after)
            logger.warning(
                "Slack delivery of %s failed (%s); retrying %s in %.1fs",
                key,
                error.code,
                route,
                delay,
            )

    def _sent(self, entry: Entry, channel_id: str, ts: str, *, paced: bool = True) -> None:
        """Record a delivery (and the thread it starts), then persist."""
        with self._lock:
            now = self._clock()
            self._outbox.delivered(entry, channel_id, ts, now)
            action = entry.action
            if isinstance(action, Post) and action.thread is not None and ts:
                self._record_thread(action.thread, action, entry.route, channel_id, ts)
            pace = self._pace(entry.route)
            pace.sent(now) if paced else pace.recovered()
            self._counts["posted"] += 1
            latency = max(0.0, now - entry.queued_at)
            self._last_latency = latency
            self._latency_sum += latency
            self._latency_count += 1
            self._lock.notify_all()
        self._save()

    def _record_thread(self, thread: str, post: Post, route: str, channel_id: str, ts: str) -> None:
        """The first message of a thread is where its later signals reply (under the lock)."""
        if self._outbox.thread_of(post, route) is None:
            self._outbox.threaded(thread, route, channel_id, ts)

    def _bury(self, entry: Entry, code: str) -> None:
        """A message Slack refuses for good: kept as a dead letter, reported once."""
        logger.error("Slack refuses %s for good (%s); kept as a dead letter", entry.key, code)
        with self._lock:
            now = self._clock()
            self._outbox.bury(entry, code)
            self._pace(entry.route).recovered()
            if not entry.key.startswith(REFUSED_PREFIX):
                self._queue(_refused(entry, code, now), now)
                self._start_workers()
            self._lock.notify_all()
        self._save()


#: Keys of the `monitor_degraded` that reports an alert Slack refused for good.
REFUSED_PREFIX = "degraded:slack-refused@"


def _refused(entry: Entry, code: str, now: float) -> Post:
    """The one report of a dead letter: which alert, and what Slack said."""
    at = datetime.fromtimestamp(now, UTC)
    details: DegradedDetails = {
        "source": "slack-refused",
        "since": at.isoformat(),
        "detail": f"Slack refused {entry.key} for good ({code}); it is kept as a dead letter",
    }
    return Post("monitor_degraded", "", f"{REFUSED_PREFIX}{at.isoformat()}", at, details)
