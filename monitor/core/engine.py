"""The alert engine: a pure state machine from facts to actions.

It never reads the clock, the network or the disk: time arrives as `Tick`/`Watermark`
facts, and the caller performs the returned `Post`/`Resolve` actions. Given the same
config and the same set of facts — in any order, any number of times, with the sources'
watermarks honest — it returns the same alerts, each key exactly once. Its whole state is
a JSON document (`to_json`/`restore`), so a restarted daemon resumes exactly.

Deadline and freshness judgement live in `monitor.core.tracks` and incidents in
`monitor.core.incidents`; this module routes facts to them, owns the per-Job signals
(`job_failed`, `traceback`), source health (`monitor_degraded`), config replacement, and the
log of posted keys. It reads the config only through `monitor.core.spec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.core.codec import canonical_json
from monitor.core.facts import (
    JOB_EVENTS,
    KUBERNETES,
    Action,
    ConfigRejected,
    ConfigReplaced,
    Decision,
    Edit,
    Fact,
    JobGone,
    JobSeen,
    Post,
    Remind,
    Resolve,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)
from monitor.core.incidents import Incident
from monitor.core.kinds import (
    DegradedDetails,
    JobFailedDetails,
    RecoveredDetails,
    TracebackDetails,
    is_resolvable,
    kind_info,
)
from monitor.core.matching import BatchIndex, JobIdentity
from monitor.core.runs import RecentSuccesses, RunHistory, describe_run
from monitor.core.schedule import (
    NEVER,
    canonical_zone,
    epoch,
    from_epoch,
    iso,
    parse_instant,
)
from monitor.core.spec import BatchSpec, ConfigSpec
from monitor.core.status import batch_status
from monitor.core.tracks import DeadlineTrack, FreshnessTrack, Track
from monitor.core.watches import run_thread, watch
from monitor.core.witnesses import Witnesses

STATE_VERSION = 2
#: Failures and tracebacks are stamped to the second; allow that much before the first start.
_CLOCK_RESOLUTION = timedelta(seconds=1)
_HISTORY_LENGTH = 200
#: Keys of signals a source can deliver again after a restart (see `Engine.prune`).
_REDELIVERABLE = ("job_failed:", "traceback:", "degraded:", "overrun:")
#: Kinds the run watches post and resolve.
_WATCH_KINDS = ("at_risk", "overrun")
#: A Kubernetes view this far behind the clock is lagging; a stall is reported once this
#: process has seen it lag for `_LAG_CONFIRMATION` and for more than `health.degraded_after`.
_LAG_TOLERANCE = timedelta(seconds=10)
_LAG_CONFIRMATION = timedelta(seconds=30)
#: Successes of any Job remembered for batches that a reload adds.
_RECENT_SUCCESSES = 20_000
_EPSILON = timedelta(milliseconds=1)


def schedule_signature(config: ConfigSpec, batch: BatchSpec) -> str:
    """A short digest of what, if changed by a reload, makes a batch be re-judged.

    Zones are compared by identity after canonicalisation (`UTC` and `Etc/UTC` are one).
    """
    zone = canonical_zone(config.zone_of(batch).key)
    if batch.deadline is not None:
        text = f"deadline|{batch.deadline}|{zone}|{batch.window}|{batch.grace}"
        calendar = config.calendar_of(batch)
        if calendar is not None:  # appended only when set: older signatures stay valid
            text += f"|calendar|{calendar.signature()}"
    else:
        text = f"freshness|{batch.freshness}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclasses.dataclass
class SourceState:
    """What the engine knows of one source's reachability.

    `trusted` is False for health restored from saved state: an outage the previous
    process saw says nothing about this one until this process has tried the source.
    """

    reachable: bool
    last_contact: datetime
    detail: str
    degraded_key: str | None = None
    trusted: bool = True


class Engine:
    """Feed it facts with `handle`; perform what it returns. See the module docstring."""

    def __init__(
        self,
        config: ConfigSpec,
        started_at: datetime,
        history_retention: timedelta = timedelta(days=7),
    ) -> None:
        self.started_at = started_at
        self.now = started_at
        self.history_retention = history_retention
        self.watermarks: dict[str, datetime] = {}
        self.tracks: dict[str, Track] = {}
        self.signatures: dict[str, str] = {}
        self.posted: dict[str, datetime] = {}
        self.open_alerts: dict[str, dict[str, str]] = {}
        self.last_failure: dict[str, datetime] = {}
        self.sources: dict[str, SourceState] = {}
        self.config_degraded_key: str | None = None
        self.watermark_stall_key: str | None = None
        self._lagging_since: datetime | None = None
        self.history: list[dict[str, str]] = []
        self.runs: dict[str, RunHistory] = {}
        self._decisions: list[Decision] = []
        self.config = config
        self._index = BatchIndex(config.batches)
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._open: set[str] = set()
        self._recent = RecentSuccesses(_RECENT_SUCCESSES)
        # Run watches (`watches`): when each batch's overrun/at-risk check is next due, and
        # the batches of each running run they follow (to end them if it is deleted).
        self._watch_heap: list[tuple[datetime, str]] = []
        self._watch_due: dict[str, datetime] = {}
        self._running_uids: dict[str, tuple[str, ...]] = {}
        self._warnings: dict[str, dict[str, str]] | None = None  # see _open_warnings
        #: Incidents opened inside a silence, posted when it ends if still open (by key).
        self.held: dict[str, Post] = {}
        self._queued: list[Action] = []
        self._encoded: dict[str, str] = {}
        self.witnesses = Witnesses()
        self._awaiting_events: list[tuple[datetime, str]] = []  # heap items held back
        #: Batches judged from a new starting instant since `take_started` was last called.
        self._started: list[str] = []
        self._reconcile(config, started_at)

    # -- input ---------------------------------------------------------------------------

    def handle(self, fact: Fact) -> list[Action]:
        """Apply one fact; return the actions it makes due (already deduplicated)."""
        match fact:
            case JobSeen():
                actions = self._job_seen(fact)
            case TracebackSeen():
                actions = self._traceback(fact)
            case Watermark(source=source, seen_up_to=seen):
                if source not in self.watermarks or seen > self.watermarks[source]:
                    self.watermarks[source] = seen
                actions = self._advance() + self._check_watermark()
            case Tick(now=now):
                self.now = max(self.now, now)
                actions = (
                    self._advance()
                    + self._check_sources()
                    + self._check_watermark()
                    + self._reminders()
                )
            case SourceHealth():
                actions = self._source_health(fact)
            case ConfigReplaced(config=config, at=at):
                actions = self._replace_config(config, at)
            case ConfigRejected():
                actions = self._config_rejected(fact)
            case JobGone(uid=uid):
                # A completion already seen still counts; a run deleted while running ends
                # the watches that follow it.
                actions = []
                for name in self._running_uids.pop(uid, ()):
                    runs = self.runs.get(name)
                    if runs is not None and runs.vanished(uid):
                        actions += self._watch_batch(name)
        if self._queued:
            actions, self._queued = self._queued + actions, []
        recorded = self._record(actions)
        return recorded + self._release_held() if self.held else recorded

    def handle_all(self, facts: Iterable[Fact]) -> list[Action]:
        return [action for fact in facts for action in self.handle(fact)]

    # -- jobs and logs -------------------------------------------------------------------

    def _job_seen(self, job: JobSeen) -> list[Action]:
        if not self.witnesses.counts(job):
            return []  # an event of an end the API reported already
        batches = self._index.batches_for(job)  # a JobSeen is its own identity
        actions: list[Action] = []
        was_running = self._running_uids.pop(job.uid, None) is not None
        watched: list[str] = []
        for batch in batches:
            runs = self._runs_of(batch.name)
            recorded = self.witnesses.as_recorded(job, runs)
            if recorded is not None and runs.seen(recorded):
                self._encoded.pop(batch.name, None)
                watched.append(batch.name)  # the durations (so the p90) changed
            elif job.outcome == "running" or was_running:
                watched.append(batch.name)
        if job.outcome == "running" and batches:
            self._running_uids[job.uid] = tuple(batch.name for batch in batches)
        if job.outcome == "succeeded" and job.completion_time is not None:
            self._remember_success(job)
            for batch in batches:
                actions += self._completed(batch, job.uid, job.completion_time)
        elif job.outcome == "failed":
            # A failure without its own time is placed at the Job's start, never at "now":
            # an old failure seen again after a restart must not look new.
            failed_at = job.failed_at or job.start_time or job.created_at or self.now
            for batch in batches:
                self._note_failure(batch.name, failed_at)
            actions += self._job_failed(job, self._alerting(batches, "job_failed"), failed_at)
        for name in watched:
            actions += self._watch_batch(name)
        return actions

    def _runs_of(self, name: str) -> RunHistory:
        runs = self.runs.get(name)
        if runs is None:
            runs = self.runs[name] = RunHistory()
        return runs

    def take_decisions(self) -> list[Decision]:
        """The judgements made since the last call, with their reasons."""
        decisions, self._decisions = self._decisions, []
        return decisions

    def _took(self, name: str, track: Track) -> None:
        if track.reasons:
            self._decisions += [Decision(name, reason) for reason in track.reasons]
            track.reasons.clear()

    def _alerting(self, batches: list[BatchSpec], kind: str) -> BatchSpec | None:
        """The batch a failure signal is alerted as: the first (config order) whose switch
        for `kind` is on; the first match when none is (its switch then silences it)."""
        return next(
            (b for b in batches if getattr(b.notify, kind)), batches[0] if batches else None
        )

    def _completed(self, batch: BatchSpec, uid: str, at: datetime) -> list[Action]:
        track = self.tracks[batch.name]
        if track.changes_nothing(uid, at):  # a relist after a restart: most of 100k Jobs
            return []
        actions = track.completed(uid, at)
        self._took(batch.name, track)
        self._encoded.pop(batch.name, None)
        self._schedule(batch.name)
        return actions

    def _remember_success(self, job: JobSeen) -> None:
        self._recent.add(job)  # for batches a reload adds (`RecentSuccesses`)

    def _note_failure(self, batch: str, at: datetime) -> None:
        if batch not in self.last_failure or at > self.last_failure[batch]:
            self.last_failure[batch] = at

    def _too_old(self, at: datetime) -> bool:
        """Signals from before the first start, or older than the key log, are not alerted."""
        return at < self.started_at - _CLOCK_RESOLUTION or at < self.now - self.history_retention

    def _job_failed(
        self, job: JobSeen, batch: BatchSpec | None, failed_at: datetime
    ) -> list[Action]:
        if self._too_old(failed_at) or (batch is None and not self._notify(batch, "job_failed")):
            return []
        details: JobFailedDetails = {
            "namespace": job.namespace,
            "job": job.name,
            "uid": job.uid,
            "cronjob": job.cronjob,
            "reason": job.reason,
            "message": job.message,
            "failed_at": iso(failed_at),
        }
        if job.kind != "Job":
            details["run_kind"] = job.kind
        post = Post(
            kind="job_failed",
            batch=batch.name if batch else "",
            key=f"job_failed:{job.namespace}/{job.name}@{job.uid}",
            at=failed_at,
            details=details,
            thread=run_thread(job.namespace, job.name),
        )
        return self._unless_muted(post, batch)

    def _traceback(self, seen: TracebackSeen) -> list[Action]:
        batch: BatchSpec | None = None
        if seen.job is not None:
            identity = JobIdentity(seen.namespace, seen.job, seen.cronjob, seen.labels)
            batches = self._index.batches_for(identity)
            for matched in batches:
                self._note_failure(matched.name, seen.time)
            batch = self._alerting(batches, "traceback")
        if self._too_old(seen.time) or (batch is None and not self._notify(batch, "traceback")):
            return []
        details: TracebackDetails = {
            "namespace": seen.namespace,
            "pod": seen.pod,
            "container": seen.container,
            "job": seen.job,
            "cronjob": seen.cronjob,
            "first_line": seen.first_line,
            "final_line": seen.final_line,
            "time": iso(seen.time),
        }
        post = Post(
            kind="traceback",
            batch=batch.name if batch else "",
            key=f"traceback:{seen.namespace}/{seen.pod}/{seen.container}@{iso(seen.time)}",
            at=seen.time,
            details=details,
            thread=run_thread(seen.namespace, seen.job) if seen.job else None,
        )
        return self._unless_muted(post, batch)

    def _unless_muted(self, post: Post, batch: BatchSpec | None) -> list[Action]:
        """The post, or nothing when its batch's switch mutes its kind: then its key is
        recorded as decided (`suppressed`, counted once), never forgotten, so a later
        relist or a reload that turns the switch on does not alert it after the fact."""
        if batch is None or self._notify(batch, post.kind):
            return [post]
        if post.key not in self.posted:
            self.posted[post.key] = post.at
            self._decisions.append(Decision(batch.name, "suppressed"))
        return []

    def _notify(self, batch: BatchSpec | None, kind: str) -> bool:
        """Per-batch switches; Jobs of no batch only alert when `unmatched` asks."""
        if batch is not None:
            return bool(getattr(batch.notify, kind))
        unmatched = self.config.unmatched
        return unmatched is not None and bool(getattr(unmatched.notify, kind))

    # -- time ------------------------------------------------------------------------------

    def await_events(self, restarted_at: datetime, bound: timedelta) -> None:
        """Judge deadlines due before `restarted_at` only once the Job events in Cloud
        Logging are read up to it (`Watermark(JOB_EVENTS)`), or once `bound` has passed."""
        self.witnesses.await_events(restarted_at, bound)

    def horizon(self) -> datetime | None:
        """Up to when deadlines can be judged: now, unless the cluster view lags behind."""
        seen = self.watermarks.get(KUBERNETES)
        return None if seen is None else min(self.now, seen)

    def _advance(self) -> list[Action]:
        """Walk every track that has something due at or before the horizon.

        Tracks wait in a heap keyed by their next due instant, so an idle engine with
        thousands of batches does almost nothing per tick.
        """
        horizon = self.horizon()
        if horizon is None:
            return []
        actions: list[Action] = []
        events_seen = self.watermarks.get(JOB_EVENTS)
        if self._awaiting_events and self.witnesses.released(events_seen, self.now):
            for item in self._awaiting_events:
                heapq.heappush(self._heap, item)
            self._awaiting_events = []
        while self._heap and self._heap[0][0] <= horizon:
            due, name = heapq.heappop(self._heap)
            if self._due.get(name) != due:
                continue  # superseded by a later _schedule
            limit = self.witnesses.limit(due, horizon, events_seen)
            if limit is None:  # due before a restart, and the events are not read that far
                self._awaiting_events.append((due, name))
                continue
            del self._due[name]
            track = self.tracks[name]
            actions += self._with_latest_run(name, track.advance(limit))
            self._took(name, track)
            self._encoded.pop(name, None)
            if track.due() <= horizon:  # a track that cannot progress must not spin here
                self._due[name] = horizon + _EPSILON
                heapq.heappush(self._heap, (horizon + _EPSILON, name))
                continue
            self._schedule(name)
            actions += self._watch_batch(name)  # a decided deadline, a new upcoming one
        while self._watch_heap and self._watch_heap[0][0] <= horizon:
            due, name = heapq.heappop(self._watch_heap)
            if self._watch_due.get(name) == due:
                del self._watch_due[name]
                actions += self._watch_batch(name)
        return actions

    def _watch_batch(self, name: str) -> list[Action]:
        """The batch's overrun and at-risk actions due at the horizon (`watches`), and
        its next check filed in the watch heap."""
        horizon = self.horizon()
        batch = self.config.batch_named(name)
        track = self.tracks.get(name)
        if horizon is None or batch is None or track is None:
            return []
        open_here = self._open_warnings().get(name, {})
        zone = track.rule.cron.tz if isinstance(track, DeadlineTrack) else ZoneInfo("UTC")
        found = watch(batch, track, self._runs_of(name), horizon, open_here, zone)
        if found.next_check != NEVER and self._watch_due.get(name) != found.next_check:
            self._watch_due[name] = found.next_check
            heapq.heappush(self._watch_heap, (found.next_check, name))
        return found.actions

    def _open_warnings(self) -> dict[str, dict[str, str]]:
        """Open `at_risk`/`overrun` alerts by batch (key -> kind), indexed once from the
        open-alert log and then kept up to date by `_record`."""
        if self._warnings is None:
            self._warnings = {}
            for key, alert in self.open_alerts.items():
                if alert["kind"] in _WATCH_KINDS:
                    self._warnings.setdefault(alert["batch"], {})[key] = alert["kind"]
        return self._warnings

    def _watch_all(self) -> None:
        """Every batch's watches are due at the next horizon (start, restore, reload)."""
        self._watch_due = dict.fromkeys(self.tracks, self.started_at)
        self._watch_heap = [(due, name) for name, due in self._watch_due.items()]
        heapq.heapify(self._watch_heap)

    def _with_latest_run(self, name: str, actions: list[Action]) -> list[Action]:
        """A missed deadline says what the batch's latest run did (SPEC: never started
        since …, running for N min, failed with REASON, succeeded late)."""
        if not actions:
            return actions
        runs = self.runs.get(name) or RunHistory()
        track = self.tracks[name]
        zone = track.rule.cron.tz if isinstance(track, DeadlineTrack) else ZoneInfo("UTC")
        p90 = runs.duration_quantile(0.9, at_least=5)
        described: list[Action] = []
        for action in actions:
            if isinstance(action, Post | Edit) and action.kind == "missed_deadline":
                run = describe_run(runs.latest(action.at), action.at, zone, p90)
                details = {**action.details, "latest_run": run}
                action = dataclasses.replace(action, details=details)
            described.append(action)
        return described

    def _schedule(self, name: str) -> None:
        """File a track that changed: under its next due instant, and among the batches
        with an open incident (reminders and wake-ups look only there)."""
        track = self.tracks[name]
        due = track.due()
        if self._due.get(name) != due:
            self._due[name] = due
            heapq.heappush(self._heap, (due, name))
        if track.incident is None:
            self._open.discard(name)
        else:
            self._open.add(name)

    def _schedule_all(self) -> None:
        self._due = {name: track.due() for name, track in self.tracks.items()}
        self._heap = [(due, name) for name, due in self._due.items()]
        heapq.heapify(self._heap)
        self._open = {name for name, track in self.tracks.items() if track.incident is not None}
        self._watch_all()

    def next_wakeup(self) -> datetime | None:
        """The earliest instant at which a `Tick` could make something due."""
        instants = [self._heap[0][0]] if self._heap else []
        degraded_after = self.config.health.degraded_after
        for state in self.sources.values():
            if not state.reachable and state.degraded_key is None and state.trusted:
                instants.append(state.last_contact + degraded_after + _EPSILON)
        seen = self.watermarks.get(KUBERNETES)
        api = self.sources.get(KUBERNETES)
        watching = api is not None and api.reachable and api.trusted
        if seen is not None and watching and self.watermark_stall_key is None:
            lag_due = seen + degraded_after + _EPSILON
            if self._lagging_since is not None:
                lag_due = max(lag_due, self._lagging_since + _LAG_CONFIRMATION)
            instants.append(lag_due)
        instants += self._silence_ends()
        if (catch_up_ends := self.witnesses.wakeup()) is not None:
            instants.append(catch_up_ends)
        every = self.config.slack.remind
        for incident in self._incidents():
            reminder = incident.next_reminder(every)
            if reminder is not None:
                instants.append(reminder)
        found = min(instants, default=NEVER)
        return None if found == NEVER else found

    # -- health ----------------------------------------------------------------------------

    def _source_health(self, health: SourceHealth) -> list[Action]:
        state = self.sources.get(health.source)
        if state is None:
            state = self.sources[health.source] = SourceState(
                health.reachable, health.last_contact, health.detail
            )
        state.reachable, state.detail, state.trusted = health.reachable, health.detail, True
        state.last_contact = max(state.last_contact, health.last_contact)
        if health.reachable and state.degraded_key is not None:
            key, state.degraded_key = state.degraded_key, None
            return [_back(key, health.last_contact, health.source)]
        return self._check_sources()

    def _check_sources(self) -> list[Action]:
        actions: list[Action] = []
        degraded_after = self.config.health.degraded_after
        for source, state in sorted(self.sources.items()):
            due = state.last_contact + degraded_after
            if state.reachable or state.degraded_key is not None or not state.trusted:
                continue
            if self.now <= due:
                continue
            state.degraded_key = f"degraded:{source}@{iso(state.last_contact)}"
            actions.append(
                _degraded(state.degraded_key, due, source, state.last_contact, state.detail)
            )
        return actions

    def _lag_reference(self) -> datetime | None:
        """The Kubernetes watermark, when the view lags while the API is reachable and this
        process has seen the lag last (None: no lag worth reporting, or the question does not
        arise: no view yet, or the API is unreachable, which `_check_sources` reports).

        The lag must have been observed by this process for `_LAG_CONFIRMATION`, so a
        process resumed after a pause (or a restart) does not page for the second it takes
        the watch to catch up.
        """
        seen = self.watermarks.get(KUBERNETES)
        state = self.sources.get(KUBERNETES)
        if seen is None or state is None or not state.reachable or not state.trusted:
            self._lagging_since = None
            return None
        if self.now - seen <= _LAG_TOLERANCE:
            self._lagging_since = None
            return None
        if self._lagging_since is None:
            self._lagging_since = self.now
        if self.now - self._lagging_since < _LAG_CONFIRMATION:
            return None
        return seen

    def _check_watermark(self) -> list[Action]:
        """`monitor_degraded` while the Kubernetes view lags real time by more than
        `health.degraded_after` with the API reachable (a stalled watch); resolved when it
        catches up."""
        degraded_after = self.config.health.degraded_after
        seen = self._lag_reference()
        if self.watermark_stall_key is not None:
            current = self.watermarks.get(KUBERNETES)
            if current is None or self.now - current > degraded_after:
                return []
            key, self.watermark_stall_key = self.watermark_stall_key, None
            return [_back(key, self.now, "kubernetes-watermark")]
        if seen is None or self.now - seen <= degraded_after:
            return []
        self.watermark_stall_key = f"degraded:kubernetes-watermark@{iso(seen)}"
        detail = "the Kubernetes API answers but the Job watch has stopped moving"
        return [_degraded(self.watermark_stall_key, self.now, "kubernetes-watermark", seen, detail)]

    def _incident_keys(self) -> set[str]:
        return {incident.key for incident in self._incidents()}

    def _incidents(self) -> list[Incident]:
        """The open incidents (O(open), not O(batches): asked after every fact)."""
        found = (self.tracks[name].incident for name in self._open)
        return [incident for incident in found if incident is not None]

    def _reminders(self) -> list[Action]:
        every = self.config.slack.remind
        actions: list[Action] = []
        for name in sorted(self._open):
            incident = self.tracks[name].incident
            if incident is not None and (due := incident.reminder(self.now, every)):
                actions += due
                self._encoded.pop(name, None)
        return actions

    # -- config ----------------------------------------------------------------------------

    def _config_rejected(self, rejected: ConfigRejected) -> list[Action]:
        if self.config_degraded_key is not None:
            return []
        self.config_degraded_key = f"degraded:config@{iso(rejected.at)}"
        key, at = self.config_degraded_key, rejected.at
        return [_degraded(key, at, "config", at, errors=list(rejected.errors))]

    def _replace_config(self, config: ConfigSpec, at: datetime) -> list[Action]:
        at = max(at, self.now)  # a reload is never placed behind what was already judged
        self.config = config
        self._index = BatchIndex(config.batches)
        actions = self._reconcile(config, at)
        if self.config_degraded_key is not None:
            actions.append(_back(self.config_degraded_key, at, "config"))
            self.config_degraded_key = None
        return actions + self._advance()

    def take_started(self) -> list[str]:
        """The batches judged from a new starting instant (added by a reload or found new
        at a restart) since the last call.

        Unlike everything else the engine decides, that instant is not re-derived from the
        sources: a successor that resumed from a state saved before it would start those
        batches from its own start and skip the deadlines in between. So the caller saves
        at once when this is not empty.
        """
        started, self._started = self._started, []
        return started

    def _reconcile(self, config: ConfigSpec, at: datetime) -> list[Action]:
        """Re-judge every batch from what is known under the new config.

        Unchanged batches are kept as they are. A re-timed deadline batch keeps its decided
        deadlines, known successes and open incident, and judges under the new rule only
        deadlines not yet decided; a new freshness bound keeps the last success and the open
        incident. An added batch is judged like a first start, from the successes already
        seen. A removed batch, or one that changed kind, has its open incident closed.
        """
        tracks: dict[str, Track] = {}
        signatures: dict[str, str] = {}
        actions: list[Action] = []
        for batch in config.batches:
            signature = schedule_signature(config, batch)
            old = self.tracks.get(batch.name)
            if old is not None and self.signatures.get(batch.name) == signature:
                tracks[batch.name] = old
            else:
                track, closed = self._fresh_track(config, batch, at, old)
                tracks[batch.name] = track
                actions += closed
            signatures[batch.name] = signature
        for name, track in self.tracks.items():
            if name not in tracks and track.incident is not None:
                actions.append(track.incident.closed(at, "batch removed from config"))
        kept = {name for name, track in tracks.items() if self.tracks.get(name) is track}
        self._encoded = {name: text for name, text in self._encoded.items() if name in kept}
        self.tracks, self.signatures = tracks, signatures
        self.runs = {name: runs for name, runs in self.runs.items() if name in tracks}
        self._schedule_all()
        return actions

    def _fresh_track(
        self, config: ConfigSpec, batch: BatchSpec, at: datetime, old: Track | None
    ) -> tuple[Track, list[Action]]:
        """The track of a batch that is new or whose timing changed (see `_reconcile`)."""
        rule = config.deadline_rule(batch)
        if rule is not None and isinstance(old, DeadlineTrack):
            return old.retimed(rule), []
        if rule is None and isinstance(old, FreshnessTrack):
            assert batch.freshness is not None
            return old.rebound(batch.freshness), []
        closed: list[Action] = []
        if old is not None and old.incident is not None:
            closed.append(
                old.incident.closed(at, "the batch changed between deadline and freshness")
            )
        track: Track
        if rule is None:
            assert batch.freshness is not None
            track = FreshnessTrack.starting(batch.name, batch.freshness, at)
        else:
            track = DeadlineTrack.starting(batch.name, rule, at)
        self._started.append(batch.name)
        if old is not None:
            track.last_success = old.last_success
        identity_matches = self._index.batches_for
        for job in self._recent:
            if job.completion_time is not None and batch in identity_matches(job):
                closed += track.completed(job.uid, job.completion_time)
                self._runs_of(batch.name).seen(job)
        track.reasons.clear()  # re-judging what was known is not a new decision
        return track, closed

    # -- output ----------------------------------------------------------------------------

    def _record(self, actions: list[Action]) -> list[Action]:
        """Drop keys already posted, and remember what is open."""
        recorded: list[Action] = []
        for action in actions:
            if self._held_back(action):
                continue
            if isinstance(action, Post):
                # Edits and reminders are numbered by their incident's own state, so they
                # can never repeat; only posts need the key log.
                if action.key in self.posted:
                    continue
                self.posted[action.key] = action.at
                if is_resolvable(action.kind):
                    self.open_alerts[action.key] = {
                        "kind": action.kind,
                        "batch": action.batch,
                        "at": iso(action.at),
                    }
                    if action.kind in _WATCH_KINDS:
                        warnings = self._open_warnings().setdefault(action.batch, {})
                        warnings[action.key] = action.kind
            elif isinstance(action, Resolve):
                if self.open_alerts.pop(action.key, None) is None:
                    continue  # Resolved already (or never posted): never say it twice.
                if action.kind in _WATCH_KINDS:
                    self._open_warnings().get(action.batch, {}).pop(action.key, None)
            self._remember(action)
            recorded.append(action)
        return recorded

    # -- silences ------------------------------------------------------------------------

    def _silenced(self, batch: str, at: datetime) -> bool:
        return bool(batch) and any(s.covers(batch, at) for s in self.config.silences)

    def _held_back(self, action: Action) -> bool:
        """Silences: an alert due inside one is recorded (its key kept, counted) and not
        posted; an incident is held to be posted when the silence ends, kept current by
        its edits, and dropped if it closes first."""
        if isinstance(action, Post):
            if action.key in self.posted or not self._silenced(action.batch, action.at):
                return False
            self.posted[action.key] = action.at
            self._decisions.append(Decision(action.batch, "silenced"))
            self.history.append(
                {"at": iso(action.at), "kind": "silenced", "batch": action.batch,
                 "key": action.key}
            )  # fmt: skip
            del self.history[:-_HISTORY_LENGTH]
            if kind_info(action.kind).incident:
                self.held[action.key] = action
            return True
        if isinstance(action, Edit) and action.key in self.held:
            self.held[action.key] = dataclasses.replace(
                self.held[action.key], details=action.details
            )
            return True
        if isinstance(action, Remind):
            return action.parent in self.held
        if isinstance(action, Resolve) and action.key in self.held:
            del self.held[action.key]  # closed inside the silence: never posted
            return True
        return False

    def _release_held(self) -> list[Action]:
        """Incidents still open when their silence has ended are posted now: ended as far
        as the cluster has been seen (the horizon), so a completion inside the silence that
        is still on its way closes the incident first instead of following its post."""
        horizon = self.horizon()
        if horizon is None:
            return []
        released: list[Action] = []
        for key, post in list(self.held.items()):
            if self._silenced(post.batch, horizon):
                continue
            del self.held[key]
            self.open_alerts[key] = {"kind": post.kind, "batch": post.batch, "at": iso(post.at)}
            self._remember(post)
            released.append(post)
        return released

    def _silence_ends(self) -> list[datetime]:
        """When silences holding incidents end (the engine wakes to post them)."""
        ends = []
        for post in self.held.values():
            horizon = self.horizon() or self.now
            covering = [s.until for s in self.config.silences if s.covers(post.batch, horizon)]
            if covering:
                ends.append(max(covering))
        return ends

    def _remember(self, action: Action) -> None:
        kind = "recovered" if isinstance(action, Resolve) else action.kind
        self.history.append(
            {"at": iso(action.at), "kind": kind, "batch": action.batch, "key": action.key}
        )
        del self.history[:-_HISTORY_LENGTH]

    def prune(self) -> None:
        """Forget what can no longer matter, so saved state stays small.

        The key log keeps signals that sources may deliver again (failures, tracebacks,
        source health) for the retention; an incident's key only while it is open: tracks
        never judge a decided deadline again, so a closed incident cannot come back.
        """
        floor = self.now - self.history_retention
        self.posted = {
            key: at
            for key, at in self.posted.items()
            if at >= floor and (key.startswith(_REDELIVERABLE) or key in self.open_alerts)
        }
        for track in self.tracks.values():
            track.prune()
        self._encoded.clear()

    # -- status --------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Per batch, what a person asks first (see `monitor.core.status`)."""
        by_batch: dict[str, list[str]] = {}
        for key, alert in sorted(self.open_alerts.items(), key=lambda item: item[1]["at"]):
            by_batch.setdefault(alert["batch"], []).append(key)
        return [
            batch_status(
                batch,
                self.tracks[batch.name],
                self.runs.get(batch.name) or RunHistory(),
                {key: self.open_alerts[key]["kind"] for key in by_batch.get(batch.name, [])},
                self.last_failure.get(batch.name),
                self.config.zone_of(batch),
                self.now,
                silenced=self._silenced(batch.name, self.now),
            )
            for batch in self.config.batches
        ]

    # -- persistence ---------------------------------------------------------------------

    def _track_entry(self, name: str) -> dict[str, Any]:
        """A batch's saved form: its track, kind (t: "f" for freshness, absent for deadline),
        schedule signature (g), success durations (r, u: see `RunHistory.to_json`)."""
        track = self.tracks[name]
        entry = {"g": self.signatures.get(name, ""), **track.to_json()}
        if isinstance(track, FreshnessTrack):
            entry["t"] = "f"
        runs = self.runs.get(name)
        if runs is not None:
            entry.update(runs.to_json(track.last_success))
        return entry

    def encoded(self) -> str:
        """`to_json` as `canonical_json` text, re-encoding only the batches that changed
        since the last call (a save of 10,000 batches must not re-encode them all)."""
        entries = []
        for name in sorted(self.tracks):
            text = self._encoded.get(name)
            if text is None:
                text = self._encoded[name] = canonical_json(self._track_entry(name))
            entries.append(f"{canonical_json(name)}:{text}")
        tracks = "{" + ",".join(entries) + "}"
        document = self.to_json(tracks=False)
        return (
            "{"
            + ",".join(
                f"{canonical_json(key)}:{tracks if key == 'tracks' else canonical_json(value)}"
                for key, value in sorted(document.items())
            )
            + "}"
        )

    def to_json(self, tracks: bool = True) -> dict[str, Any]:
        """The whole state as a JSON-able document (see `restore`)."""
        incidents = self._incident_keys()
        return {
            "version": STATE_VERSION,
            "started_at": iso(self.started_at),
            "now": iso(self.now),
            "watermarks": {source: iso(at) for source, at in self.watermarks.items()},
            "tracks": {name: self._track_entry(name) for name in self.tracks} if tracks else {},
            "posted": {key: epoch(at) for key, at in self.posted.items()},
            # Open incidents are saved with their tracks; only the rest is listed here.
            "open_alerts": {
                key: [alert["kind"], alert["batch"], alert["at"]]
                for key, alert in self.open_alerts.items()
                if key not in incidents
            },
            "last_failure": {name: epoch(at) for name, at in self.last_failure.items()},
            "held": [
                {"k": p.key, "kind": p.kind, "b": p.batch, "a": iso(p.at), "d": dict(p.details)}
                for p in self.held.values()
            ],
            "sources": {
                source: {
                    "reachable": state.reachable,
                    "last_contact": iso(state.last_contact),
                    "detail": state.detail,
                    "degraded_key": state.degraded_key,
                }
                for source, state in self.sources.items()
            },
            "config_degraded_key": self.config_degraded_key,
            "watermark_stall_key": self.watermark_stall_key,
            "history": self.history,
        }

    @classmethod
    def restore(
        cls,
        config: ConfigSpec,
        data: dict[str, Any],
        now: datetime,
        history_retention: timedelta = timedelta(days=7),
    ) -> Engine:
        """Resume from `to_json` output; a config changed meanwhile is applied at `now`.

        Only clock-derived state is rebuilt: watermarks are kept, so deadlines that passed
        while the daemon was down are decided once the sources catch up again.
        """
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        engine = cls.__new__(cls)
        engine.started_at = parse_instant(data["started_at"])
        engine.now = max(parse_instant(data["now"]), now)
        engine.history_retention = history_retention
        engine.watermarks = {s: parse_instant(at) for s, at in data["watermarks"].items()}
        engine.signatures = {name: str(saved["g"]) for name, saved in data["tracks"].items()}
        engine.runs = {
            name: RunHistory.from_json(saved, saved.get("l"))
            for name, saved in data["tracks"].items()
            if saved.get("r")
        }
        engine._decisions = []
        engine.tracks = {}
        gone: list[Incident] = []
        for name, saved in data["tracks"].items():
            track, orphan = _restore_track(config, name, saved)
            if track is not None:
                engine.tracks[name] = track
            elif orphan is not None:
                gone.append(orphan)
        engine.posted = {key: from_epoch(at) for key, at in data["posted"].items()}
        engine.open_alerts = {
            key: {"kind": kind, "batch": batch, "at": at}
            for key, (kind, batch, at) in data["open_alerts"].items()
        }
        engine.last_failure = {n: from_epoch(at) for n, at in data["last_failure"].items()}
        engine.sources = {
            source: SourceState(
                reachable=saved["reachable"],
                last_contact=parse_instant(saved["last_contact"]),
                detail=saved["detail"],
                degraded_key=saved["degraded_key"],
                trusted=False,
            )
            for source, saved in data["sources"].items()
        }
        engine.config_degraded_key = data["config_degraded_key"]
        engine.watermark_stall_key = data.get("watermark_stall_key")
        engine._lagging_since = None
        engine.history = [dict(entry) for entry in data["history"]]
        engine.config = config
        engine._index = BatchIndex(config.batches)
        engine._heap, engine._due = [], {}
        engine._recent = RecentSuccesses(_RECENT_SUCCESSES)
        engine._watch_heap, engine._watch_due, engine._running_uids = [], {}, {}
        engine._warnings = None
        engine._open = set()
        engine._encoded = {}
        engine.witnesses = Witnesses()
        engine._awaiting_events = []
        engine._started = []
        engine.held = {
            saved["k"]: Post(
                kind=saved["kind"],
                batch=saved["b"],
                key=saved["k"],
                at=parse_instant(saved["a"]),
                details=saved.get("d") or {},
            )
            for saved in data.get("held") or ()
        }
        restored = [track.incident for track in engine.tracks.values() if track.incident]
        for incident in [*restored, *gone]:
            if incident.key in engine.held:
                continue  # opened inside a silence: not posted yet
            engine.open_alerts[incident.key] = {
                "kind": incident.kind,
                "batch": incident.batch,
                "at": iso(incident.opened_at),
            }
        engine._queued = [
            incident.closed(engine.now, "batch removed from config") for incident in gone
        ] + engine._reconcile(config, engine.now)
        return engine


def _degraded(
    key: str,
    at: datetime,
    source: str,
    since: datetime,
    detail: str | None = None,
    errors: list[str] | None = None,
) -> Post:
    """A `monitor_degraded` alert: which source, since when, and what it said."""
    details: DegradedDetails = {"source": source, "since": iso(since)}
    if detail is not None:
        details["detail"] = detail
    if errors is not None:
        details["errors"] = errors
    return Post(kind="monitor_degraded", batch="", key=key, at=at, details=details)


def _back(key: str, at: datetime, source: str) -> Resolve:
    """The resolution of a `monitor_degraded` alert: `source` is fine again since `at`."""
    details: RecoveredDetails = {"source": source, "back_at": iso(at)}
    return Resolve(key=key, kind="monitor_degraded", batch="", at=at, details=details)


def _restore_track(
    config: ConfigSpec, name: str, saved: dict[str, Any]
) -> tuple[Track | None, Incident | None]:
    """A saved track under the batch's current config, or (None, its open incident) when the
    batch is gone or changed kind meanwhile (that incident is then closed).

    A batch whose timing changed meanwhile is re-judged by `_reconcile`; until then the
    saved state is read under the new rule.
    """
    body = {key: value for key, value in saved.items() if key not in ("t", "g", "r", "u")}
    batch = config.batch_named(name)
    rule = config.deadline_rule(batch) if batch is not None else None
    kind = saved.get("t", "d")
    if kind == "d" and rule is not None:
        return DeadlineTrack.from_json(name, rule, body), None
    if kind == "f" and batch is not None and batch.freshness:
        return FreshnessTrack.from_json(name, batch.freshness, body), None
    incident = body.get("i")
    return None, Incident.from_json(name, incident) if incident else None
