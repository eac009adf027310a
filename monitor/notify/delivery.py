"""How each engine action becomes Slack calls, for one channel's worker.

A post is top-level or a reply in its run's thread; an edit re-renders an incident's
message in place; a reminder is a broadcast reply; a resolve is a reply plus an edit; a
storm's held alerts are one digest. Nothing here can block a channel: a layout that raises
is replaced by plain text, blocks Slack refuses are resent as plain text, a channel Slack
refuses falls back to the default one, and a message refused for good is buried.

`DeliverySteps` is the half of `monitor.notify.slack.Notifier` that talks to Slack; the
Notifier supplies the outbox, the lock and the bookkeeping (declared below).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from monitor.core.facts import Action, Edit, Post, Remind, Resolve
from monitor.notify.digest_message import render_digest
from monitor.notify.escape import cut
from monitor.notify.outbox import Entry, Outbox, SentRecord, action_key
from monitor.notify.pacing import ChannelPace
from monitor.notify.render import (
    Message,
    RenderSettings,
    redirected,
    render_fallback,
    render_post,
    render_recovered,
    render_reminder,
    render_resolved,
)
from monitor.notify.storm import StormGate, digest_key
from monitor.notify.transport import Delivery, DeliveryError, Transport

logger = logging.getLogger(__name__)


class DeliverySteps:
    """Deliver one outbox entry (or a digest); see the module docstring."""

    _transport: Transport
    _settings: RenderSettings
    _default: str
    _outbox: Outbox
    _lock: threading.Condition
    _counts: dict[str, int]
    _storm: StormGate
    _clock: Callable[[], float]

    # -- supplied by the Notifier ------------------------------------------------------

    def _contact(self) -> None:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def _pace(self, route: str) -> ChannelPace:
        raise NotImplementedError

    def _failed(self, route: str | None, error: DeliveryError, key: str = "") -> None:
        raise NotImplementedError

    def _sent(self, entry: Entry, channel_id: str, ts: str, *, paced: bool = True) -> None:
        raise NotImplementedError

    def _bury(self, entry: Entry, code: str) -> None:
        raise NotImplementedError

    def _record_thread(self, thread: str, post: Post, route: str, channel_id: str, ts: str) -> None:
        raise NotImplementedError

    # -- delivery ----------------------------------------------------------------------

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
            self._failed(entry.route, error, entry.key)
        except Exception:  # a bug must not kill a channel's worker
            logger.exception("unexpected error delivering %s", entry.key)
            self._failed(entry.route, DeliveryError("transient", "internal"), entry.key)

    def _render(self, action: Action, render: Callable[[], Message]) -> Message:
        """`render()`, or a plain-text message when the layout raises (never a poison)."""
        try:
            return render()
        except Exception:
            logger.exception("rendering %s failed; posting it as plain text", action.key)
            kind = "recovered" if isinstance(action, Resolve) else action.kind
            return render_fallback(kind, action.batch, action_key(action))

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
        """A top-level post, or a reply in its run's thread when the run has one."""
        message = self._render(post, lambda: render_post(post, self._settings, entry.mention))
        with self._lock:
            thread = self._outbox.thread_of(post, entry.route)
        channel, thread_ts = thread if thread is not None else (entry.route, None)
        delivery = Delivery(channel, message, post.kind, post.batch, post.key, thread_ts)
        if (posted := self._post_or_bury(entry, delivery)) is not None:
            self._sent(entry, *posted)

    def _deliver_digest(self, route: str, held: list[Entry]) -> None:
        """The held diagnostics of `route` as one digest; each counts as delivered."""
        first = held[0].held_at
        assert first is not None
        key = digest_key(route, first)
        posts = [entry.action for entry in held if isinstance(entry.action, Post)]
        try:
            message = render_digest(key, route, posts)
        except Exception:  # never a poison: the digest still goes out, as plain text
            logger.exception("rendering digest %s failed; posting it as plain text", key)
            message = render_fallback("digest", "", key)
        delivery = Delivery(route, message, "digest", "", key)
        try:
            channel_id, ts = self._post(delivery, route)
        except DeliveryError as error:
            self._failed(route, error, key)
            return
        with self._lock:
            now = self._clock()
            self._storm.digested(route, now)
            self._outbox.released(route)
            self._pace(route).sent(now)
            for entry in held:
                entry.held_at = None
                action = entry.action
                if isinstance(action, Post) and action.thread is not None:
                    self._record_thread(action.thread, action, route, channel_id, ts)
            self._outbox.delivered_together(held, channel_id, ts, now)
            self._counts["posted"] += 1
            self._lock.notify_all()
        logger.info("storm digest %s: %d alerts in one message", key, len(held))
        self._save()

    def _deliver_edit(self, entry: Entry, edit: Edit) -> None:
        """An incident that grew: its message is re-rendered in place (no one is pinged)."""
        with self._lock:
            record = self._outbox.sent.get(edit.key)
        if record is None or record.alert is None:
            logger.info("edit of %s skipped: the alert is not (or no longer) known", edit.key)
            self._sent(entry, "", "", paced=False)
            return
        updated = dataclasses.replace(record.alert, details=dict(edit.details))
        message = self._render(edit, lambda: render_post(updated, self._settings))
        self._edit_in_place(record, message, edit.key)
        with self._lock:
            self._outbox.edited(edit.key, dict(edit.details))
        self._sent(entry, record.channel_id, record.ts, paced=False)

    def _deliver_remind(self, entry: Entry, remind: Remind) -> None:
        """A reminder: a reply in the incident's thread, also sent to the channel."""
        with self._lock:
            record = self._outbox.sent.get(remind.parent)
        delivery = Delivery(
            record.channel_id if record else entry.route,
            self._render(remind, lambda: render_reminder(remind, self._settings)),
            remind.kind,
            remind.batch,
            remind.key,
            thread_ts=record.ts if record else None,
            broadcast=record is not None,
        )
        if (posted := self._post_or_bury(entry, delivery)) is not None:
            self._sent(entry, *posted)

    def _deliver_resolve(self, entry: Entry, resolve: Resolve) -> None:
        with self._lock:
            record = self._outbox.sent.get(resolve.key)
        if entry.reply_ts is None and resolve.closed is None:
            reply = self._render(resolve, lambda: render_recovered(resolve, self._settings))
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
            alert = record.alert
            edit = self._render(resolve, lambda: render_resolved(alert, resolve, self._settings))
            self._edit_in_place(record, edit, resolve.key)
        self._sent(entry, entry.reply_channel or "", entry.reply_ts or "")


def _plain(delivery: Delivery) -> Delivery:
    """The same alert without blocks: what Slack accepts when it refuses the layout."""
    message = Message(cut(delivery.message.text, 3000), [], delivery.message.metadata)
    return dataclasses.replace(delivery, message=message)
