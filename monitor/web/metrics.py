"""Prometheus metrics of the daemon, in a registry of their own.

The daemon calls small typed methods (`alert_posted`, `set_source`, `ticked`, ...) at the
moment something happens; `/metrics` renders the registry. The registry is private to each
`Metrics` instance, not prometheus_client's global one, so several daemons (or tests) in one
process never clash over metric names.

Ages (`source_last_event_age_seconds`, `outbox_oldest_age_seconds`) are computed when
Prometheus scrapes, from the instant the daemon last reported, so an idle daemon that stopped
hearing from a source still shows the age growing. `last_tick_timestamp_seconds` is what a
dead man's switch alert watches: `time() - sla_monitor_last_tick_timestamp_seconds > 300`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from monitor.core.facts import AlertKind, Reason

PREFIX = "sla_monitor"
#: Slack answers in tens of milliseconds when well, seconds when throttled or retried.
POST_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: A state write: tens of milliseconds at 10,000 batches (docs/operations.md); 50 ms is its target.
SAVE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
#: Why the HTTP server turned a client away or cut it off (see `Metrics.http_refused`).
HttpRefusal = Literal["busy", "crowded", "oversized", "slow_request", "slow_reader"]


class _AgeCollector:
    """Yields age gauges computed at scrape time from remembered instants."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._source_up: dict[str, bool] = {}
        self._source_last_event: dict[str, float] = {}
        self._outbox_oldest: float | None = None

    def set_source(self, source: str, up: bool, last_event_at: float | None) -> None:
        with self._lock:
            self._source_up[source] = up
            if last_event_at is not None:
                self._source_last_event[source] = last_event_at

    def set_outbox_oldest(self, enqueued_at: float | None) -> None:
        with self._lock:
            self._outbox_oldest = enqueued_at

    def describe(self) -> Iterator[Metric]:
        """Names only, so registering checks for duplicates without calling `collect`."""
        yield GaugeMetricFamily(f"{PREFIX}_source_up", "", labels=["source"])
        yield GaugeMetricFamily(f"{PREFIX}_source_last_event_age_seconds", "", labels=["source"])
        yield GaugeMetricFamily(f"{PREFIX}_outbox_oldest_age_seconds", "")

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        with self._lock:
            up = dict(self._source_up)
            last_event = dict(self._source_last_event)
            oldest = self._outbox_oldest
        up_family = GaugeMetricFamily(
            f"{PREFIX}_source_up",
            "1 while the source (kubernetes, cloud_logging, slack) is reachable.",
            labels=["source"],
        )
        for source, is_up in sorted(up.items()):
            up_family.add_metric([source], 1.0 if is_up else 0.0)
        yield up_family
        age_family = GaugeMetricFamily(
            f"{PREFIX}_source_last_event_age_seconds",
            "Seconds since the source last delivered an event or a successful contact.",
            labels=["source"],
        )
        for source, at in sorted(last_event.items()):
            age_family.add_metric([source], max(0.0, now - at))
        yield age_family
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Seconds the oldest undelivered Slack message has waited; 0 when empty.",
            value=0.0 if oldest is None else max(0.0, now - oldest),
        )


class _BatchCounts:
    """Counters labelled by batch, kept as plain counts and exported at scrape time.

    A config has thousands of batches and each is judged every day: a labelled
    prometheus_client child costs ~620 B (a lock, a value object, the label dict), a
    count here ~90 B (measured: 10,000 batches each met and missed take 1.7 MB, not 12.4).
    Exported as the same counters, without their `_created` samples.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}

    def inc(self, *values: str) -> None:
        with self._lock:
            self._counts[values] = self._counts.get(values, 0) + 1

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labels)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = sorted(self._counts.items())
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, count in counts:
            family.add_metric(values, count)
        yield family


class Metrics:
    """Every metric the daemon exports. Methods are thread-safe and cheap."""

    def __init__(
        self, clock: Callable[[], float] = time.time, process_metrics: bool = True
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._ages = _AgeCollector(clock)
        registry.register(self._ages)
        if process_metrics:
            ProcessCollector(registry=registry)  # process_* (CPU, RSS, fds) on Linux
        self._alerts = Counter(
            f"{PREFIX}_alerts_posted",
            "Alerts raised by the engine (queued for Slack, delivered in order), by kind.",
            ["kind"],
            registry=registry,
        )
        for kind in get_args(AlertKind):
            self._alerts.labels(kind=kind)  # every kind exported from the start, at 0
        self._decisions = _BatchCounts(
            f"{PREFIX}_decisions",
            "Judgements by batch and reason: met, missed (an incident opens), repeat (a miss "
            "inside an open incident), recovered, suppressed (muted by a notify switch).",
            ("batch", "outcome"),
        )
        registry.register(self._decisions)
        self._suppressed = _BatchCounts(
            f"{PREFIX}_alerts_suppressed",
            "Alerts due inside a silence of their batch: recorded, not posted, by batch.",
            ("batch",),
        )
        registry.register(self._suppressed)
        self._watch_restarts = Counter(
            f"{PREFIX}_watch_restarts", "Kubernetes watch streams re-opened.", registry=registry
        )
        self._relists = Counter(
            f"{PREFIX}_relists",
            "Full Kubernetes lists (start-up, 410 Gone, lost watch).",
            registry=registry,
        )
        self._skipped = Counter(
            f"{PREFIX}_input_skipped",
            "Malformed input logged and skipped (API objects, watch lines, log entries), "
            "by source.",
            ["source"],
            registry=registry,
        )
        self._outbox_depth = Gauge(
            f"{PREFIX}_outbox_depth", "Slack messages waiting for delivery.", registry=registry
        )
        self._post_latency = Histogram(
            f"{PREFIX}_slack_post_latency_seconds",
            "Duration of one Slack Web API call (post or update), retries included.",
            buckets=POST_LATENCY_BUCKETS,
            registry=registry,
        )
        self._last_tick = Gauge(
            f"{PREFIX}_last_tick_timestamp_seconds",
            "Unix time the engine last processed a clock tick (for a dead man's switch).",
            registry=registry,
        )
        self._leader = Gauge(
            f"{PREFIX}_leader",
            "1 while this replica runs the pipeline (holds the Lease, or no election).",
            registry=registry,
        )
        self._reloads = Counter(
            f"{PREFIX}_config_reloads",
            "Config reloads, by result (ok / invalid).",
            ["result"],
            registry=registry,
        )
        for result in ("ok", "invalid"):
            self._reloads.labels(result=result)
        self._state_saves = Counter(
            f"{PREFIX}_state_saves", "Times the state was persisted.", registry=registry
        )
        self._state_save_seconds = Histogram(
            f"{PREFIX}_state_save_seconds",
            "Duration of one write of the state document (off the engine's thread).",
            buckets=SAVE_BUCKETS,
            registry=registry,
        )
        self._state_size = Gauge(
            f"{PREFIX}_state_size_bytes", "Size of the last saved state.", registry=registry
        )
        self._http_refused = Counter(
            f"{PREFIX}_http_refused",
            "HTTP clients turned away or cut off, by reason: busy (answered 503), crowded "
            "(the oldest of too many connections still sending a request), oversized "
            "(request head), slow_request (head not sent in time), slow_reader (response "
            "not taken in time).",
            ["reason"],
            registry=registry,
        )
        for reason in get_args(HttpRefusal):
            self._http_refused.labels(reason=reason)

    # -- what the daemon reports ----------------------------------------------------------

    def alert_posted(self, kind: str) -> None:
        self._alerts.labels(kind=kind).inc()

    def decision(self, batch: str, outcome: Reason) -> None:
        self._decisions.inc(batch, outcome)
        if outcome == "silenced":
            self._suppressed.inc(batch)

    def set_source(self, source: str, up: bool, last_event_at: datetime | None = None) -> None:
        """Record reachability; `last_event_at` (None: unchanged) starts its age clock."""
        at = None if last_event_at is None else last_event_at.timestamp()
        self._ages.set_source(source, up, at)

    def watch_restarted(self, count: int = 1) -> None:
        self._watch_restarts.inc(count)

    def relisted(self, count: int = 1) -> None:
        self._relists.inc(count)

    def skipped(self, source: str, count: int = 1) -> None:
        self._skipped.labels(source=source).inc(count)

    def set_outbox(self, depth: int, oldest_enqueued_at: datetime | None) -> None:
        self._outbox_depth.set(depth)
        at = None if oldest_enqueued_at is None else oldest_enqueued_at.timestamp()
        self._ages.set_outbox_oldest(at)

    def observe_post_latency(self, seconds: float) -> None:
        self._post_latency.observe(seconds)

    def ticked(self, at: datetime) -> None:
        self._last_tick.set(at.timestamp())

    def set_leader(self, leader: bool) -> None:
        self._leader.set(1 if leader else 0)

    def config_reloaded(self, ok: bool) -> None:
        self._reloads.labels(result="ok" if ok else "invalid").inc()

    def state_saved(self, seconds: float, size_bytes: int) -> None:
        self._state_saves.inc()
        self._state_save_seconds.observe(seconds)
        self._state_size.set(size_bytes)

    def http_refused(self, reason: HttpRefusal) -> None:
        self._http_refused.labels(reason=reason).inc()

    # -- exposition -------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry as (body, content type), OpenMetrics if the scraper asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
