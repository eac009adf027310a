"""Cloud Logging source: Python tracebacks in GKE container logs -> `TracebackSeen` facts,
and (with `events`, the default) Kubernetes Job end events -> `JobSeen` facts.

Each poll sends one `entries:list` request for traceback lines since the cursor minus an
overlap window (entries can be ingested late), skips insertIds already handled, and
either parses a whole traceback out of one message or, because GKE writes one entry per
stdout line, opens a follow-up for that container: one extra request per poll fetches
the lines after every open traceback (all containers in one OR-ed filter) and feeds them
to `TracebackGrouper` until the final exception line has settled. With events, one more
request lists the Job end events since the events cursor (`events.py`), and once it has
read every page a `Watermark(JOB_EVENTS)` says up to when (the poll's instant minus
`EVENTS_INGESTION_ALLOWANCE`). So the steady state is two requests per `poll_interval`,
three while tracebacks are being assembled; every request draws on one `RequestBudget`
(at most 50 a minute, the project's quota being 60), and a poll over budget stops early
and is continued by the next. Failures back
off by kind: an unreachable or failing service (connection errors, 5xx) with the shared
`Backoff`, at most 5 s apart so it is used again promptly once it answers; a 429
RESOURCE_EXHAUSTED (no Retry-After on this API) doubles the delay from the poll interval
up to `QUOTA_BACKOFF` (the quota is per minute); a refused query (400) waits `MAX_BACKOFF`.

`poll_once()` is the unit of work (returns the seconds until the next poll is due);
`start()`/`stop()` run it on a thread. `cursor()` and `events_cursor()` are JSON-able dicts
to save with the daemon's state and pass back (`cursor=`, `events_cursor=`) so a restart
neither misses nor repeats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.model import CloudLoggingSettings
from monitor.core.facts import (
    CLOUD_LOGGING,
    JOB_EVENTS,
    Fact,
    SourceHealth,
    TracebackSeen,
    Watermark,
)
from monitor.core.tracebacks import (
    GrouperState,
    Traceback,
    TracebackGrouper,
    find_tracebacks,
    message_lines,
)
from monitor.sources.base import Backoff, PollLoop
from monitor.sources.logs.budget import RequestBudget
from monitor.sources.logs.client import entries_of, list_page, make_client
from monitor.sources.logs.cursor import Cursor, PendingTraceback
from monitor.sources.logs.entries import (
    JOB_NAME_LABELS,
    MAX_FILTER_CHARS,
    ContainerKey,
    ContainerLine,
    controller_uid,
    follow_up_filter,
    parse_entry,
    traceback_filter,
)
from monitor.sources.logs.events import MalformedEvent, events_filter, parse_event

logger = logging.getLogger(__name__)

_JOB_NAME_KEYS = tuple(label.removeprefix("k8s-pod/") for label in JOB_NAME_LABELS)

JobLookup = Callable[[str, str], "str | None"]
Emit = Callable[[Fact], None]

MAX_PAGES_PER_POLL = 5
MAX_FOLLOW_UPS_PER_REQUEST = 40  # keeps the OR-ed filter far below 20,000 characters
MAX_BACKOFF = timedelta(minutes=5)
QUOTA_BACKOFF = timedelta(minutes=1)
#: How long after it happened an event may still be ingested, for the events watermark.
EVENTS_INGESTION_ALLOWANCE = timedelta(seconds=10)


class OverBudget(Exception):
    """The poll has spent its share of the read quota; the next poll continues."""


class CloudLoggingSource:
    """Polls Cloud Logging for tracebacks of the configured cluster and namespaces."""

    def __init__(
        self,
        settings: CloudLoggingSettings,
        namespaces: Sequence[str],
        emit: Emit,
        *,
        job_for_pod: JobLookup | None = None,
        cursor: Mapping[str, Any] | None = None,
        events_cursor: Mapping[str, Any] | None = None,
        budget: RequestBudget | None = None,
        client: Any = None,
        overlap: timedelta = timedelta(minutes=2),
        settle: timedelta = timedelta(seconds=5),
        group_timeout: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.namespaces = tuple(namespaces)
        self._emit = emit
        self._job_for_pod = job_for_pod
        self._client = client if client is not None else make_client(settings)
        self._overlap = overlap
        self._settle = settle
        self._group_timeout = group_timeout
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._cursor = Cursor.restore(cursor, default_checked=now)
        self._events: Cursor | None = None
        if settings.events:
            self._events = Cursor.restore(events_cursor, default_checked=now)
        self._budget = budget or RequestBudget()
        self._groupers: dict[ContainerKey, TracebackGrouper] = {}
        self._failures = 0
        self.skipped = 0  # malformed entries skipped (one writer: the polling thread)
        self._backoff = Backoff()
        self._retry_at: datetime | None = None
        self._last_contact: datetime | None = None
        self._reachable: bool | None = None
        self._loop = PollLoop(
            self.poll_once, "cloud-logging", settings.poll_interval.total_seconds()
        )
        probe = traceback_filter(settings.cluster, self.namespaces, now, with_namespaces=True)
        self._namespaces_in_filter = len(probe) < MAX_FILTER_CHARS - 1000

    # -- public surface ------------------------------------------------------------------

    def cursor(self) -> dict[str, Any]:
        """The JSON-able position to persist (pass it back as `cursor=` after a restart)."""
        with self._lock:
            return self._cursor.to_dict()

    def events_cursor(self) -> dict[str, Any] | None:
        """The events reader's position to persist (None: events are not read)."""
        with self._lock:
            return self._events.to_dict() if self._events is not None else None

    def current_filter(self) -> str:
        """The main query as the next poll will send it."""
        return self._main_filter(self._cursor.query_since(self._overlap))

    def poll_once(self) -> float:
        """One poll (one request, two with open tracebacks); seconds until the next is due."""
        with self._lock:
            now = self._clock()
            if self._retry_at is not None and now < self._retry_at:
                return (self._retry_at - now).total_seconds()
            try:
                complete = self._poll(now)
                events_complete = self._poll_events(now)
            except OverBudget:
                self._succeeded(now, False)
                wait = max(self._budget.seconds_until_free(), 1.0)
                logger.info("Cloud Logging read budget spent; continuing in %.0f s", wait)
                return wait
            except Exception as error:  # any failure: report, back off, never crash
                return self._failed(now, error)
            self._succeeded(now, complete)
            if events_complete:
                seen_up_to = now - EVENTS_INGESTION_ALLOWANCE
                self._emit(Watermark(JOB_EVENTS, seen_up_to=seen_up_to))
            return self.settings.poll_interval.total_seconds()

    def start(self) -> None:
        """Poll on a daemon thread until `stop()`."""
        self._loop.start()

    @property
    def synced(self) -> bool:
        """A poll has succeeded since the start."""
        return self._last_contact is not None

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)

    # -- one poll ------------------------------------------------------------------------

    def _main_filter(self, since: datetime) -> str:
        return traceback_filter(
            self.settings.cluster,
            self.namespaces,
            since,
            with_namespaces=self._namespaces_in_filter,
        )

    def _list(self, filter_text: str, page_token: str | None) -> Mapping[str, Any]:
        if not self._budget.take():
            raise OverBudget
        return list_page(self._client, self.settings.project, filter_text, page_token)

    def _poll(self, now: datetime) -> bool:
        """Run the main query and the follow-ups; True when every page was read."""
        since = self._cursor.query_since(self._overlap)
        filter_text = self._main_filter(since)
        token: str | None = None
        last_time: datetime | None = None
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._list(filter_text, token)
            for raw in entries_of(page):
                line = parse_entry(raw)
                if line is None:
                    self.skipped += 1
                else:
                    last_time = line.time
                    self._take_new_line(line)
            token = page.get("nextPageToken") or None
            if token is None:
                break
        complete = token is None
        self._follow_up(now)
        if complete:
            self._cursor.checked(now, self._overlap)
        elif last_time is not None:
            self._cursor.checked(min(now, last_time + self._overlap), self._overlap)
        return complete

    def _poll_events(self, now: datetime) -> bool:
        """List the Job end events since the events cursor; True when every page was read."""
        cursor = self._events
        if cursor is None:
            return False
        filter_text = events_filter(
            self.settings.project,
            self.settings.cluster,
            self.namespaces,
            cursor.query_since(self._overlap),
            with_namespaces=self._namespaces_in_filter,
        )
        token: str | None = None
        last_time: datetime | None = None
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._list(filter_text, token)
            for raw in entries_of(page):
                try:
                    event = parse_event(raw)
                except MalformedEvent as problem:
                    self.skipped += 1
                    logger.warning("skipping Job event entry (%s): %s", problem, repr(raw)[:300])
                    continue
                last_time = event.entry_time
                if not cursor.first_sight(event.insert_id, event.entry_time):
                    continue
                if self.namespaces and event.seen.namespace not in self.namespaces:
                    continue
                self._emit(event.seen)
            token = page.get("nextPageToken") or None
            if token is None:
                break
        if token is None:
            cursor.checked(now, self._overlap)
        elif last_time is not None:
            cursor.checked(min(now, last_time + self._overlap), self._overlap)
        return token is None

    def _take_new_line(self, line: ContainerLine) -> None:
        if not self._cursor.first_sight(line.insert_id, line.time):
            return
        if self.namespaces and line.namespace not in self.namespaces:
            return
        if "\n" in line.text.rstrip("\r\n"):
            for traceback in find_tracebacks(message_lines(line.time, line.text)):
                self._emit_traceback(line.key, line, traceback)
            return
        pending = self._cursor.pending.get(line.key)
        if pending is not None and line.time >= pending.since:
            return  # its follow-up already covers this line (a chained traceback)
        self._cursor.pending[line.key] = PendingTraceback(
            since=line.time,
            fetched_up_to=line.time,
            job=self._resolve_job(line),
            labels=line.pod_labels,
        )

    def _follow_up(self, now: datetime) -> None:
        if not self._cursor.pending:
            return
        batch = sorted(self._cursor.pending.items(), key=lambda item: item[1].fetched_up_to)
        batch = batch[:MAX_FOLLOW_UPS_PER_REQUEST]
        starts = [(key, pending.fetched_up_to) for key, pending in batch]
        until = max(pending.since for _, pending in batch) + self._group_timeout
        page = self._list(follow_up_filter(self.settings.cluster, starts, until), None)
        truncated = bool(page.get("nextPageToken"))
        last_time = None
        for raw in entries_of(page):
            line = parse_entry(raw)
            if line is None:
                self.skipped += 1
                continue
            if line.key not in self._cursor.pending:
                continue
            last_time = line.time
            self._feed(line)
        for key, pending in batch:
            if key not in self._cursor.pending:
                continue
            if truncated and last_time is not None:
                pending.advance(last_time)
            else:
                self._settle_pending(key, now)

    def _feed(self, line: ContainerLine) -> None:
        pending = self._cursor.pending[line.key]
        if line.insert_id in pending.fed or line.time < pending.since:
            return
        pending.fed[line.insert_id] = line.time
        self._cursor.first_sight(line.insert_id, line.time)
        grouper = self._groupers.setdefault(line.key, TracebackGrouper())
        for text_line in message_lines(line.time, line.text):
            for traceback in grouper.feed(text_line):
                self._emit_traceback(line.key, pending, traceback)
                if (opened := grouper.opened_at) is not None:
                    pending.since = opened  # the next traceback in this container
        pending.advance(line.time)

    def _settle_pending(self, key: ContainerKey, now: datetime) -> None:
        pending = self._cursor.pending[key]
        grouper = self._groupers.get(key)
        state = grouper.state if grouper is not None else GrouperState.IDLE
        if grouper is None or state is GrouperState.IDLE:
            if grouper is None and now - pending.since < self._group_timeout:
                return  # its lines are not ingested yet
            self._drop_pending(key)
            return
        last_time = grouper.last_time or pending.since
        opened = grouper.opened_at or pending.since
        settled = state in (GrouperState.FINAL, GrouperState.CHAINED) and (
            now - last_time >= self._settle
        )
        if settled or now - opened >= self._group_timeout:
            for traceback in grouper.finish():
                self._emit_traceback(key, pending, traceback)
            self._drop_pending(key)

    def _drop_pending(self, key: ContainerKey) -> None:
        self._cursor.pending.pop(key, None)
        self._groupers.pop(key, None)

    # -- facts ---------------------------------------------------------------------------

    def _resolve_job(self, line: ContainerLine) -> str | None:
        if (job := line.job_label) is not None:
            return job
        if self._job_for_pod is None:
            return None
        try:
            return self._job_for_pod(line.namespace, line.pod)
        except Exception:
            logger.exception("job lookup failed for pod %s/%s", line.namespace, line.pod)
            return None

    def _emit_traceback(
        self,
        key: ContainerKey,
        origin: ContainerLine | PendingTraceback,
        traceback: Traceback,
    ) -> None:
        if not self._cursor.first_emission(key, traceback.time):
            return
        if isinstance(origin, ContainerLine):
            job, labels = self._resolve_job(origin), origin.pod_labels
        else:
            job, labels = origin.job, origin.labels
        job_uid = controller_uid(labels)
        if job is not None and job_uid is None and any(k in labels for k in _JOB_NAME_KEYS):
            # A Job's pods always carry its uid label too: a job-name label without one
            # is a bare pod claiming a Job, which it cannot speak for.
            job = None
        namespace, pod, container = key
        self._emit(
            TracebackSeen(
                namespace=namespace,
                pod=pod,
                container=container,
                job=job,
                time=traceback.time,
                first_line=traceback.first_line,
                final_line=traceback.final_line,
                labels=dict(labels),
                job_uid=job_uid if job is not None else None,
            )
        )

    def _succeeded(self, now: datetime, complete: bool) -> None:
        self._failures = 0
        self._backoff.reset()
        self._retry_at = None
        self._last_contact = now
        if self._reachable is not True:
            self._reachable = True
            self._emit(SourceHealth(CLOUD_LOGGING, reachable=True, last_contact=now))
        if complete:
            self._emit(Watermark(CLOUD_LOGGING, seen_up_to=now))

    def _failed(self, now: datetime, error: Exception) -> float:
        self._failures += 1
        status = getattr(error, "code", None)
        delay = timedelta(seconds=self._backoff.next_delay())
        if status == 429:
            quota = self.settings.poll_interval * (1 << min(self._failures, 10))
            delay = min(quota, QUOTA_BACKOFF)
        if status == 400:
            delay = MAX_BACKOFF  # our filter was refused: retrying fast cannot help
            logger.error("Cloud Logging refused the query: %s", error)
        else:
            logger.warning("Cloud Logging poll failed (%s); next try in %s", error, delay)
        self._retry_at = now + delay
        self._reachable = False
        self._emit(
            SourceHealth(
                CLOUD_LOGGING,
                reachable=False,
                last_contact=self._last_contact or self._cursor.started,
                detail=f"{type(error).__name__}: {error}"[:500],
            )
        )
        return delay.total_seconds()
