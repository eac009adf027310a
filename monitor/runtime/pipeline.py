"""The leader's work: sources -> engine -> Slack outbox, with state saved as it goes.

Threads: each source runs its own (the Kubernetes reflectors for Jobs, Workflows and Job
pods; Cloud Logging polls through the scheduler), the notifier runs its own, and ONE
engine thread owns the engine. Log facts pass the Job directory on the way in
(`job_directory`: which Job, and batch, a pod's traceback belongs to). They meet
in a queue: sources put facts, the scheduler puts wake-ups and chores, the engine thread
applies them in order and hands the resulting actions to the notifier's outbox, which
persists them before anything is sent.

APScheduler wakes the engine exactly at its next decision instant (a UTC `DateTrigger`,
never a cron trigger: the schedule module already did the DST math) — no per-second
ticking. The state document (engine + log cursors) is saved at most about once a second
after a change, at once when batches begin to be judged (a reload or restart that adds
them: from when is the one thing the sources cannot tell a successor), and once more on
stop: the engine thread encodes what changed and the `StateWriter` thread writes it, so no
write ever delays a fact. The outbox has its own document, written by the notifier before
each post.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes.client import ApiClient

from monitor.config.model import Config
from monitor.core.codec import canonical_json
from monitor.core.engine import Engine
from monitor.core.facts import (
    CLOUD_LOGGING,
    KUBERNETES,
    SLACK,
    Action,
    Edit,
    Fact,
    JobSeen,
    Post,
    Remind,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)
from monitor.notify.outbox import Outbox
from monitor.notify.render import Message, RenderSettings
from monitor.notify.routing import ConfigRouter
from monitor.notify.slack import Notifier
from monitor.notify.storm import StormGate
from monitor.notify.transport import Delivery, Transport
from monitor.runtime.job_directory import JobDirectory
from monitor.runtime.memory import freeze_survivors, release_free_memory
from monitor.runtime.resume import (
    LeaderState,
    kept_aside_report,
    leader_state_restorer,
    restore_outbox,
    resume,
)
from monitor.runtime.save_policy import SavePolicy
from monitor.runtime.slots import Slots
from monitor.runtime.snapshot_cache import SnapshotCache
from monitor.runtime.state import StateStore
from monitor.runtime.state_writer import StateWriter
from monitor.sources.argo.workflows import WORKFLOWS
from monitor.sources.base import MAX_RETRY_SECONDS, Source
from monitor.sources.kube.reflector import ReflectorSettings
from monitor.sources.kube.resources import JOBS
from monitor.sources.kube.source import KubeRunSource
from monitor.sources.logs.cloud import CloudLoggingSource
from monitor.sources.logs.pods import PodLogSource
from monitor.web.metrics import Metrics
from monitor.web.server import StatusSnapshot

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
PRUNE_SECONDS = 300.0
#: Seconds between attempts to save while the store refuses or cannot be reached.
SAVE_RETRY = 2.0
#: After a restart, how long deadlines that passed while down wait for the Job events.
CATCH_UP_BOUND = timedelta(minutes=2)


class Chore(enum.Enum):
    """Work the engine thread does besides applying facts."""

    SAVE = "save"
    REFRESH = "refresh"
    TICK = "tick"
    PRUNE = "prune"
    STOP = "stop"


def utc_now() -> datetime:
    return datetime.now(UTC)


def storm_gate(config: Config) -> StormGate:
    storm = config.slack.storm
    return StormGate(threshold=storm.threshold, window=storm.window.total_seconds())


def render_settings(config: Config) -> RenderSettings:
    logs = config.cloud_logging
    return RenderSettings(logs.project, logs.cluster) if logs else RenderSettings()


@dataclasses.dataclass(frozen=True)
class Timings:
    """Knobs tests shorten; defaults are the production values."""

    watermark_margin: timedelta = timedelta(seconds=1.25)  # see docs/kubernetes.md
    watermark_interval: float = 0.25
    silence_timeout: float = 70.0


class TimedTransport:
    """A transport whose every call's duration (SDK retries included) feeds a histogram."""

    def __init__(self, inner: Transport, observe: Callable[[float], None]) -> None:
        self._inner = inner
        self._observe = observe

    def check(self) -> str:
        return self._inner.check()

    def post(self, delivery: Delivery) -> tuple[str, str]:
        started = time.monotonic()
        try:
            return self._inner.post(delivery)
        finally:
            self._observe(time.monotonic() - started)

    def update(self, channel_id: str, ts: str, message: Message) -> None:
        started = time.monotonic()
        try:
            self._inner.update(channel_id, ts, message)
        finally:
            self._observe(time.monotonic() - started)


class Pipeline:
    """Everything only the leader runs. `start()` resumes from the state store."""

    def __init__(
        self,
        config: Config,
        *,
        api_client: ApiClient,
        store: StateStore,
        outbox_store: StateStore,
        transport: Transport,
        metrics: Metrics,
        timings: Timings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self._api_client = api_client
        self._store = store
        self._outbox_store = outbox_store
        self._transport = TimedTransport(transport, metrics.observe_post_latency)
        self._metrics = metrics
        self._kube_counts = (0, 0)  # relists, watch restarts already added to the metrics
        self._skipped_counted: dict[str, int] = {}  # malformed inputs already counted
        self._timings = timings or Timings()
        self._clock = clock
        self._queue: queue.SimpleQueue[Fact | Chore] = queue.SimpleQueue()
        self._engine_lock = threading.Lock()
        self._jobs_by_name = JobDirectory()
        self._posting = True
        self._save_policy = SavePolicy()
        self._wakeup: datetime | None = None
        self._tick_at: datetime | None = None  # when the pending Tick comes
        self._trimmed_after = 0  # relists whose freed memory was handed back
        self._relists_seen_before = -1  # at the previous tick
        self._slack_reachable: bool | None = None
        self._snapshots = SnapshotCache(lambda: self._queue.put(Chore.REFRESH), clock)
        self._thread: threading.Thread | None = None
        self._slots = Slots(clock)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Resume from the stores (raising if one cannot be reached) and start everything."""
        now = self._clock()
        main = resume(
            self._store,
            leader_state_restorer(self.config, now),
            lambda: LeaderState(None, None, None),
        )
        outbox = resume(self._outbox_store, restore_outbox, Outbox)
        self._document, self._outbox_document = main.document, outbox.document
        self._writer = StateWriter(
            self._document, retry=SAVE_RETRY, saved=self._metrics.state_saved
        )
        self._writer.start()
        self._save_policy.hold()  # until the start-up list is delivered (`SavePolicy`)
        self._engine = self._resume(main.restored.engine, now)
        self._notifier = Notifier(
            self._transport,
            router=ConfigRouter(self.config),
            storm=storm_gate(self.config),
            settings=render_settings(self.config),
            saved=outbox.restored,
            persist=lambda saved: self._outbox_document.put("outbox", saved),
        )
        kept = [item.kept_aside for item in (main, outbox) if item.kept_aside is not None]
        if kept:
            self._notifier.submit([kept_aside_report(kept, now)])
        namespaces = self.config.kubernetes.namespaces
        self._kube = KubeRunSource(
            self._api_client,
            self._from_kubernetes,
            resources=(JOBS, WORKFLOWS) if self.config.argo.enabled else (JOBS,),
            namespaces=namespaces,
            watermark_margin=self._timings.watermark_margin,
            watermark_interval=self._timings.watermark_interval,
            silence_timeout=self._timings.silence_timeout,
        )
        self._logs: CloudLoggingSource | None = None
        if self.config.cloud_logging is not None:
            self._logs = CloudLoggingSource(
                self.config.cloud_logging,
                namespaces,
                self._from_logs,
                job_for_pod=self._jobs_by_name.job_for_pod,
                cursor=main.restored.log_cursor,
                events_cursor=main.restored.events_cursor,
            )
            if main.restored.engine is not None and self.config.cloud_logging.events:
                # Deadlines that passed while down wait for the events of Jobs deleted then.
                self._engine.await_events(now, CATCH_UP_BOUND)
        self._pod_logs: PodLogSource | None = None
        if self.config.kubernetes.pod_logs:
            self._pod_logs = PodLogSource(
                self._api_client,
                namespaces,
                self._from_logs,
                cursor=main.restored.pod_log_cursor,
                settings=ReflectorSettings(silence_timeout=self._timings.silence_timeout),
            )
        if self._engine.take_started():
            # Batches new to the saved state are judged from now: written before anything
            # runs, so a crash during start-up cannot move that instant (`take_started`).
            self._document.put_encoded({"engine": self._engine.encoded()})
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()
        self._notifier.start()
        self._slots.start()
        self._slots.every(REFRESH_SECONDS, lambda: self._enqueue(Chore.TICK), "refresh")
        self._slots.every(PRUNE_SECONDS, lambda: self._enqueue(Chore.PRUNE), "prune")
        if self._logs is not None:
            self._slots.repeat("poll-cloud-logging", self._logs.poll_once, 0.0, MAX_RETRY_SECONDS)
        self._kube.start()
        if self._pod_logs is not None:
            self._pod_logs.start()
        self._enqueue(Chore.TICK)

    def _sources(self) -> list[Source]:
        """Every source this pipeline runs (the Kubernetes one first)."""
        optional: list[Source | None] = [self._pod_logs, self._logs]
        return [self._kube, *(source for source in optional if source is not None)]

    def _resume(self, engine: Engine | None, now: datetime) -> Engine:
        if engine is not None:
            logger.info("resumed engine state (first started %s)", engine.started_at)
            return engine
        logger.info("no saved engine state: first start, judging deadlines after %s", now)
        engine = Engine(self.config, started_at=now)
        engine.take_started()  # saved just below
        # Saved at once: a successor (restart or new leader) that found no engine would take
        # its own start as the first and skip every deadline and failure since this one.
        self._document.put("engine", engine.to_json())
        return engine

    def stop(self, budget: float = 10.0, *, deposed: bool = False) -> None:
        """Stop sources, drain facts, deliver what is queued (within `budget`), save.

        A deposed leader stops posting at once and saves nothing: the new leader owns
        the state now.
        """
        started = time.monotonic()
        if deposed:
            self._posting = False
            self._writer.abandon()
            self._notifier.stop(timeout=0.5)
        for source in self._sources():
            source.stop(timeout=2.0)
        self._slots.shutdown()
        self._queue.put(Chore.STOP)
        if self._thread is not None:
            self._thread.join(timeout=max(0.5, budget - (time.monotonic() - started)))
        if deposed:
            return
        remaining = budget - (time.monotonic() - started) - 1.0
        if not self._notifier.flush(timeout=max(0.0, remaining)):
            logger.warning("stopping with alerts still queued; they are saved and sent later")
        self._notifier.stop(timeout=1.0)
        self._save()
        if not self._writer.stop(timeout=max(1.0, budget - (time.monotonic() - started))):
            logger.warning("stopping before the state was written; the last save stands")

    # -- inputs ----------------------------------------------------------------------------

    def _enqueue(self, item: Fact | Chore) -> None:
        self._queue.put(item)

    def _from_kubernetes(self, fact: Fact) -> None:
        # Jobs are remembered only to map log lines to them: without a log source, the
        # memory (one entry per Job in the cluster) is not spent.
        if isinstance(fact, JobSeen) and (self._logs is not None or self._pod_logs is not None):
            self._jobs_by_name.seen(fact)
        self._queue.put(fact)

    def _from_logs(self, fact: Fact) -> None:
        """Tracebacks get their Job's owner and labels, so batches match them like Jobs."""
        if isinstance(fact, TracebackSeen):
            fact = self._jobs_by_name.attribute(fact)
        self._queue.put(fact)

    def reload(self, config: Config) -> None:
        from monitor.core.facts import ConfigReplaced

        self.config = config
        self._notifier.reroute(ConfigRouter(config), storm_gate(config))
        self._queue.put(ConfigReplaced(config, self._clock()))

    def reject(self, errors: tuple[str, ...]) -> None:
        from monitor.core.facts import ConfigRejected

        self._queue.put(ConfigRejected(self._clock(), errors))

    # -- the engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is Chore.STOP:
                return
            try:
                if isinstance(item, Chore):
                    self._chore(item)
                else:
                    self._apply(item)
            except Exception:  # a bad fact or a failed save must never stop the engine
                logger.exception("engine thread: failed to handle %r", item)

    def _apply(self, fact: Fact) -> None:
        with self._engine_lock:
            actions = self._engine.handle(fact)
            decisions = self._engine.take_decisions()
            started = self._engine.take_started()
            wakeup = self._engine.next_wakeup()
            lapsed, self._engine.witnesses.lapsed_at = self._engine.witnesses.lapsed_at, None
        if lapsed is not None:
            logger.warning(
                "the Job events in Cloud Logging were not read up to the restart within %s: "
                "judging the deadlines that passed while down with what is known",
                CATCH_UP_BOUND,
            )
        for decision in decisions:
            logger.debug("decision %s: %s", decision.batch, decision.reason)
            self._metrics.decision(decision.batch, decision.reason)
        if isinstance(fact, Tick):
            self._metrics.ticked(fact.now)
        elif isinstance(fact, SourceHealth):
            self._metrics.set_source(
                fact.source, fact.reachable, fact.last_contact if fact.reachable else None
            )
        elif isinstance(fact, Watermark):
            self._metrics.set_source(fact.source, True, self._clock())
        if actions:
            self._deliver(actions)
        clock_only = not actions and isinstance(fact, (Tick, Watermark))
        if self._save_policy.holding and self._kube.synced:
            self._save_policy.release()  # the start-up list is delivered (`SavePolicy`)
        if started:
            self._save()  # when they are judged from must survive any crash (take_started)
        elif self._save_policy.changed(clock_only=clock_only, posted=bool(actions)):
            delay = self._save_policy.delay.total_seconds()
            self._slots.after("save", delay, lambda: self._queue.put(Chore.SAVE))
        self._schedule_tick(wakeup)
        if wakeup != self._wakeup:
            self._wakeup = wakeup
            if wakeup is not None:  # a deadline decided then waits for the watermark
                self._kube.want_watermark(wakeup)

    def _deliver(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Post):
                logger.info("alert %s %s", action.kind, action.key)
                self._metrics.alert_posted(action.kind)
            elif isinstance(action, Edit):
                logger.info(
                    "incident %s now counts %s", action.key, action.details.get("missed_count")
                )
            elif isinstance(action, Remind):
                logger.info("reminder %s", action.key)
            else:
                logger.info("resolved %s", action.key)
        if self._posting:
            self._notifier.submit(actions)

    def _chore(self, chore: Chore) -> None:
        if chore is Chore.SAVE:
            if self._save_policy.due():
                self._save()
        elif chore is Chore.PRUNE:
            with self._engine_lock:
                self._engine.prune()
        elif chore is Chore.REFRESH:
            self._check_slack()
            self._apply(Tick(self._clock()))
            self._publish()
        elif chore is Chore.TICK:
            # Periodic: no status snapshot (with thousands of batches it costs far more
            # than everything else an idle daemon does); one is built when asked for.
            self._check_slack()
            self._apply(Tick(self._clock()))
            self._update_metrics()
            self._snapshots.expire()
            self._trim_after_relists()

    def _trim_after_relists(self) -> None:
        """After a (re)list of the cluster has been delivered, hand its freed pages back
        (after the first, also freeze what survived it out of the GC's passes):
        on the first tick that finds the relist count unchanged since the previous one (a
        count goes up when a relist begins; a relist of 100,000 Jobs takes seconds)."""
        relists = self._kube.relists
        settled = relists == self._relists_seen_before and self._kube.synced
        if settled and relists != self._trimmed_after:
            if self._trimmed_after == 0:  # the first list: what survives it is long-lived
                freeze_survivors()
            self._trimmed_after = relists
            release_free_memory()
        self._relists_seen_before = relists

    def _check_slack(self) -> None:
        health = self._notifier.health()
        if health.reachable == self._slack_reachable:
            return
        self._slack_reachable = health.reachable
        last = health.last_contact
        contact = datetime.fromtimestamp(last, UTC) if last is not None else self._clock()
        self._apply(SourceHealth(SLACK, health.reachable, contact, health.detail))

    # -- scheduling ------------------------------------------------------------------------

    def _schedule_tick(self, wakeup: datetime | None) -> None:
        """Have a Tick at `wakeup`, unless one comes sooner: that one finds nothing due and
        this is asked again. (Every watermark moves the wakeup of the lag check a little
        later; moving the pending Tick each time was a good part of the idle CPU.)"""
        if wakeup is None:
            return
        pending = self._tick_at
        if pending is None or wakeup < pending or pending <= self._clock():
            self._tick_at = wakeup
            self._slots.at("tick", wakeup, lambda: self._queue.put(Tick(self._clock())))

    # -- state and status ------------------------------------------------------------------

    def _save(self) -> None:
        """Hand what changed to the state writer (which writes it on its own thread)."""
        with self._engine_lock:
            sections = {"engine": self._engine.encoded()}  # only changed batches re-encoded
        if self._logs is not None:
            sections["log_cursor"] = canonical_json(self._logs.cursor())
            if (events_cursor := self._logs.events_cursor()) is not None:
                sections["events_cursor"] = canonical_json(events_cursor)
        if self._pod_logs is not None:
            sections["pod_log_cursor"] = canonical_json(self._pod_logs.cursor())
        self._writer.submit(sections)
        self._save_policy.saved()

    def save_failure(self) -> tuple[float, str] | None:
        """Since when (monotonic) saves fail, and the first error; None while they work."""
        return self._writer.failure

    def _publish(self) -> None:
        snapshot = self._snapshot(batches=True)
        self._update_metrics()
        self._snapshots.publish(snapshot)

    def _snapshot(self, *, batches: bool) -> StatusSnapshot:
        with self._engine_lock:
            return StatusSnapshot.from_engine(
                self._engine,
                leader=True,
                synced=self.synced,
                generated_at=self._clock(),
                sources={SLACK: {"up": bool(self._slack_reachable is not False)}},
                batches=batches,
            )

    def _update_metrics(self) -> None:
        relists, restarts = self._kube.relists, self._kube.watch_restarts
        counted_relists, counted_restarts = self._kube_counts
        self._metrics.relisted(max(0, relists - counted_relists))
        self._metrics.watch_restarted(max(0, restarts - counted_restarts))
        self._kube_counts = (relists, restarts)
        for name, source in (
            (KUBERNETES, self._kube),
            ("pod_logs", self._pod_logs),
            (CLOUD_LOGGING, self._logs),
        ):
            if source is not None:
                total = source.skipped
                self._metrics.skipped(name, max(0, total - self._skipped_counted.get(name, 0)))
                self._skipped_counted[name] = total
        health = self._notifier.health()
        self._metrics.set_outbox(
            health.outbox_depth,
            self._clock() - timedelta(seconds=health.oldest_age_seconds)
            if health.outbox_depth
            else None,
        )

    def status_snapshot(self, fresh_within: float = 1.0) -> StatusSnapshot | None:
        """The latest snapshot, refreshed by the engine thread if older than `fresh_within`."""
        return self._snapshots.get(fresh_within)

    def readiness(self) -> StatusSnapshot:
        """Readiness and sources only, built on the caller's thread: no batch is walked,
        so a kubelet probing every few seconds costs next to nothing."""
        return self._snapshot(batches=False)

    @property
    def synced(self) -> bool:
        """Ready: the runs are listed, and so are the pods whose logs are read."""
        return self._kube.synced and (self._pod_logs is None or self._pod_logs.synced)

    def flush(self, timeout: float) -> bool:
        return self._notifier.flush(timeout)
