"""Durable, ordered, deduplicated delivery of engine actions to Slack, on its own thread.

    notifier = Notifier(transport, router=ConfigRouter(config), saved=doc.section("outbox"),
                        persist=lambda outbox: doc.put("outbox", outbox))
    notifier.start(); notifier.submit(actions); ...; notifier.stop()

`submit` addresses each post (`router`: the core's route → channel and mention), queues
actions in the outbox and calls `persist` with the outbox's JSON form
*before* it returns, so an alert is on disk before anything is sent; the worker thread
calls `persist` again after each delivery (with the channel ID and `ts`). The daemon keeps
that JSON as the `outbox` section of its one state document (`monitor.runtime.state`), next to
the engine's state, and passes it back as `saved` after a restart.

Delivery: each route (channel) is delivered in order; the SDK retries 429s, 5xx and
connection errors briefly, and beyond that a route backs off (capped exponential) and
retries for as long as Slack is down. A `Resolve` is a `recovered` reply in the alert's
thread plus an edit of the alert. A channel Slack refuses falls back to the default
channel with a note; a refused token marks the notifier unhealthy and keeps everything.
`health()` reports status, outbox depth, oldest age and delivery latency.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from monitor.core.facts import Action, Edit, Post, Remind, Resolve
from monitor.notify.escape import cut
from monitor.notify.outbox import Entry, Outbox, SentRecord
from monitor.notify.render import (
    Message,
    RenderSettings,
    redirected,
    render_post,
    render_recovered,
    render_reminder,
    render_resolved,
)
from monitor.notify.routing import OneChannel, Router
from monitor.notify.transport import Delivery, DeliveryError, Transport

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


@dataclass
class _Route:
    failures: int = 0
    retry_at: float = 0.0


class Notifier:
    """The outbox and the worker thread that empties it."""

    def __init__(
        self,
        transport: Transport,
        *,
        router: Router | None = None,
        default_channel: str | None = None,
        settings: RenderSettings | None = None,
        saved: dict[str, Any] | None = None,
        persist: Callable[[dict[str, Any]], None] | None = None,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._router: Router = router or OneChannel(default_channel)
        self._default = self._router.default_channel or ""
        self._settings = settings or RenderSettings()
        self._persist = persist
        self._initial_backoff, self._max_backoff = initial_backoff, max_backoff
        self._clock = clock
        self._outbox = Outbox.from_json(saved)
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Condition()
        self._persist_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._auth_error: str | None = None
        self._auth_failures = 0
        self._auth_retry_at = 0.0
        self._reachable = True
        self._last_contact: float | None = None
        self._counts = {"posted": 0, "updated": 0, "duplicates": 0, "failures": 0, "fallbacks": 0}
        self._latency_sum, self._latency_count = 0.0, 0
        self._last_latency: float | None = None

    # -- the daemon's side -------------------------------------------------------------

    def reroute(self, router: Router) -> None:
        """A reloaded config's routing, for alerts queued from now on."""
        with self._lock:
            self._router = router
            self._default = router.default_channel or ""

    def submit(self, actions: Iterable[Action]) -> int:
        """Queue actions (duplicates by key are ignored) and persist; returns how many queued."""
        added = 0
        with self._lock:
            now = self._clock()
            for action in actions:
                address = self._router.address(action.route) if isinstance(action, Post) else None
                if self._outbox.add(action, address, self._default, now) is None:
                    self._counts["duplicates"] += 1
                    logger.debug("already queued or delivered: %s", action.key)
                else:
                    added += 1
        if added:
            self._save()
            with self._lock:
                self._lock.notify_all()
        return added

    def snapshot(self) -> dict[str, Any]:
        """The outbox's persisted form (the `outbox` section of the state document)."""
        with self._lock:
            return self._outbox.to_json()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slack-notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Let an in-flight post finish, then stop; pending alerts stay in the outbox."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

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
            elif any(route.failures for route in self._routes.values()):
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

    # -- the worker --------------------------------------------------------------------

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

    def _run(self) -> None:
        self._check_token()
        while True:
            with self._lock:
                entry = self._next_entry()
                if self._stopping:
                    return
                if entry is None:
                    self._lock.wait(self._wait_time())
                    continue
            self._deliver(entry)

    def _check_token(self) -> None:
        try:
            who = self._transport.check()
        except DeliveryError as error:
            self._failed(None, error)
            return
        self._contact()
        logger.info("Slack: posting as %s", who)

    def _next_entry(self) -> Entry | None:
        now = self._clock()
        if self._auth_error is not None and now < self._auth_retry_at:
            return None
        for entry in self._outbox.heads():
            if self._routes.get(entry.route, _Route()).retry_at <= now:
                return entry
        return None

    def _wait_time(self) -> float:
        now = self._clock()
        instants = [route.retry_at for route in self._routes.values() if route.failures]
        if self._auth_error is not None:
            instants.append(self._auth_retry_at)
        return max(0.01, min([*instants, now + 1.0]) - now)

    def _backoff(self, failures: int) -> float:
        return float(min(self._max_backoff, self._initial_backoff * 2 ** (failures - 1)))

    def _contact(self) -> None:
        with self._lock:
            self._reachable, self._last_contact = True, self._clock()
            if self._auth_error is not None:
                logger.info("Slack accepts the token again")
            self._auth_error, self._auth_failures = None, 0

    def _failed(self, entry: Entry | None, error: DeliveryError) -> None:
        """Back off the route (or everything, for auth); the entry stays first in line."""
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
            if entry is None:
                return
            route = self._routes.setdefault(entry.route, _Route())
            route.failures += 1
            route.retry_at = now + self._backoff(route.failures)
            logger.warning(
                "Slack delivery of %s failed (%s); retrying in %.1fs",
                entry.key,
                error.code,
                route.retry_at - now,
            )

    def _done(self, entry: Entry, channel_id: str, ts: str) -> None:
        with self._lock:
            now = self._clock()
            self._outbox.delivered(entry, channel_id, ts, now)
            self._routes.pop(entry.route, None)
            self._counts["posted"] += 1
            latency = max(0.0, now - entry.queued_at)
            self._last_latency = latency
            self._latency_sum += latency
            self._latency_count += 1
            self._lock.notify_all()
        self._save()

    def _bury(self, entry: Entry, code: str) -> None:
        logger.error("Slack refuses %s for good (%s); kept as a dead letter", entry.key, code)
        with self._lock:
            self._outbox.bury(entry, code)
            self._routes.pop(entry.route, None)
            self._lock.notify_all()
        self._save()

    def _deliver(self, entry: Entry) -> None:
        try:
            action = entry.action
            if isinstance(action, Post):
                self._deliver_post(entry, action)
            elif isinstance(action, Edit):
                self._deliver_edit(entry, action)
            elif isinstance(action, Remind):
                self._deliver_remind(entry, action)
            else:
                self._deliver_resolve(entry, action)
        except DeliveryError as error:
            self._failed(entry, error)
        except Exception:  # a bug must not kill the only thread that posts
            logger.exception("unexpected error delivering %s", entry.key)
            self._failed(entry, DeliveryError("transient", "internal"))

    def _post(self, delivery: Delivery, route: str) -> tuple[str, str]:
        """Post, falling back to the default channel when `route` refuses the message."""
        try:
            answer = self._transport.post(delivery)
        except DeliveryError as error:
            if error.error_class == "message":
                logger.warning(
                    "Slack refused %s (%s); posting it as plain text", delivery.key, error.code
                )
                answer = self._transport.post(_plain(delivery))
            elif error.error_class == "channel" and self._default and route != self._default:
                logger.warning(
                    "Slack refused channel %s (%s); posting %s to %s instead",
                    delivery.channel,
                    error.code,
                    delivery.key,
                    self._default,
                )
                fallback = Delivery(
                    self._default,
                    redirected(delivery.message, delivery.channel, error.code),
                    delivery.kind,
                    delivery.batch,
                    delivery.key,
                )
                answer = self._transport.post(fallback)
                with self._lock:
                    self._counts["fallbacks"] += 1
            else:
                raise
        self._contact()
        return answer

    def _post_or_bury(self, entry: Entry, delivery: Delivery) -> tuple[str, str] | None:
        """Post `delivery`; an entry Slack refuses for good becomes a dead letter (None)."""
        try:
            return self._post(delivery, entry.route)
        except DeliveryError as error:
            if error.error_class == "message":
                self._bury(entry, error.code)
                return None
            raise

    def _edit_in_place(self, record: SentRecord, message: Message, key: str) -> None:
        """chat.update a delivered message; retried only when Slack could not be reached."""
        try:
            self._transport.update(record.channel_id, record.ts, message)
            with self._lock:
                self._counts["updated"] += 1
        except DeliveryError as error:
            if error.error_class in ("transient", "auth"):
                raise
            logger.warning("could not edit %s: %s", key, error.code)

    def _deliver_post(self, entry: Entry, post: Post) -> None:
        message = render_post(post, self._settings, entry.mention)
        delivery = Delivery(entry.route, message, post.kind, post.batch, post.key)
        if (posted := self._post_or_bury(entry, delivery)) is not None:
            self._done(entry, *posted)

    def _deliver_edit(self, entry: Entry, edit: Edit) -> None:
        """An incident that grew: its message is re-rendered in place (no one is pinged)."""
        with self._lock:
            record = self._outbox.sent.get(edit.key)
        if record is None or record.alert is None:
            logger.info("edit of %s skipped: the alert is not (or no longer) known", edit.key)
            self._done(entry, "", "")
            return
        updated = dataclasses.replace(record.alert, details=dict(edit.details))
        self._edit_in_place(record, render_post(updated, self._settings), edit.key)
        with self._lock:
            self._outbox.edited(edit.key, dict(edit.details))
        self._done(entry, record.channel_id, record.ts)

    def _deliver_remind(self, entry: Entry, remind: Remind) -> None:
        """A reminder: a reply in the incident's thread, also sent to the channel."""
        with self._lock:
            record = self._outbox.sent.get(remind.parent)
        delivery = Delivery(
            record.channel_id if record else entry.route,
            render_reminder(remind, self._settings),
            remind.kind,
            remind.batch,
            remind.key,
            thread_ts=record.ts if record else None,
            broadcast=record is not None,
        )
        if (posted := self._post_or_bury(entry, delivery)) is not None:
            self._done(entry, *posted)

    def _deliver_resolve(self, entry: Entry, resolve: Resolve) -> None:
        with self._lock:
            record = self._outbox.sent.get(resolve.key)
        if entry.reply_ts is None and resolve.closed is None:
            reply = render_recovered(resolve, self._settings)
            channel = record.channel_id if record else entry.route
            delivery = Delivery(
                channel,
                reply,
                "recovered",
                resolve.batch,
                resolve.recovered_key,
                thread_ts=record.ts if record else None,
            )
            if (posted := self._post_or_bury(entry, delivery)) is None:
                return
            entry.reply_channel, entry.reply_ts = posted
            self._save()  # the reply exists: a retry must only redo the edit
        if record is not None and record.alert is not None:
            edit = render_resolved(record.alert, resolve, self._settings)
            self._edit_in_place(record, edit, resolve.key)
        self._done(entry, entry.reply_channel or "", entry.reply_ts or "")


def _plain(delivery: Delivery) -> Delivery:
    """The same alert without blocks: what Slack accepts when it refuses the layout."""
    message = Message(cut(delivery.message.text, 3000), [], delivery.message.metadata)
    return dataclasses.replace(delivery, message=message)
