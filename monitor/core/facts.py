"""Facts in, actions out: the only vocabulary the engine speaks.

Sources turn the world (Kubernetes Jobs, log entries, the clock) into small frozen
facts; the engine answers with actions that the notifier turns into Slack posts.
Nothing here knows about any client library: a fact is already reduced at the edge.
All datetimes are timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor.core.kinds import AlertKind, Reason, Route

__all__ = ["AlertKind", "Reason", "Route"]  # re-exported: the vocabulary of facts and actions

JobOutcome = Literal["running", "succeeded", "failed"]
#: What a run is: a batch/v1 Job or an Argo Workflow (argoproj.io/v1alpha1).
RunKind = Literal["Job", "Workflow"]
#: Who told: the Kubernetes API (or Argo's) itself, or the Job events kept in Cloud Logging.
Witness = Literal["api", "events"]

#: Source names used in watermarks, health facts and `monitor_degraded` keys.
KUBERNETES = "kubernetes"
CLOUD_LOGGING = "cloud_logging"
#: The watermark of the Job events read from Cloud Logging (see `Engine.await_events`).
JOB_EVENTS = "job_events"
SLACK = "slack"


@dataclass(frozen=True, slots=True)
class JobSeen:
    """The latest known state of one run (also the last state of a DELETED event).

    A run is a Job (`kind` "Job") or an Argo Workflow (`kind` "Workflow"). For a Job,
    `outcome` is decided from conditions at the edge: `succeeded` from `Complete` or
    `SuccessCriteriaMet`, `failed` from `Failed` or `FailureTarget` (with `reason`);
    `completion_time` is its `status.completionTime` (success only). For a Workflow, the
    phase decides (`Succeeded`; `Failed`/`Error`, the phase as `reason`) and the time is
    `status.finishedAt`; `workflows` names its families (the CronWorkflow and the
    WorkflowTemplate it comes from), which `match.workflow` looks at.
    `created_at` is `metadata.creationTimestamp`. `witness` is "events" for the end of a Job
    read from its Kubernetes Event in Cloud Logging (no start, labels or owner: the CronJob
    is taken from the Job's name); the engine counts a run once whoever tells first.
    """

    uid: str
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    cronjob: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    outcome: JobOutcome = "running"
    reason: str | None = None
    message: str | None = None
    failed_at: datetime | None = None
    created_at: datetime | None = None
    kind: RunKind = "Job"
    workflows: tuple[str, ...] = ()
    witness: Witness = "api"


@dataclass(frozen=True, slots=True)
class JobGone:
    """A Job vanished from the cluster (deleted, or missing from a relist)."""

    uid: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class TracebackSeen:
    """One Python traceback, its lines already grouped, from one pod's container.

    `job` is the Job name the pod belongs to (None when it could not be resolved) and
    `job_uid` that Job's uid as the pod states it (its controller owner reference, or the
    controller-uid label) — a Job name alone is something any pod can claim;
    `time` is the timestamp of the `Traceback (most recent call last):` line, which
    together with namespace/pod/container identifies the traceback across sources.
    """

    namespace: str
    pod: str
    container: str
    job: str | None
    time: datetime
    first_line: str
    final_line: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    cronjob: str | None = None
    job_uid: str | None = None


@dataclass(frozen=True, slots=True)
class Watermark:
    """`source` has delivered every fact about the cluster up to `seen_up_to`."""

    source: str
    seen_up_to: datetime


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Whether `source` can currently reach its service; `last_contact` is the last success."""

    source: str
    reachable: bool
    last_contact: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock: the engine never reads time, it is told."""

    now: datetime


@dataclass(frozen=True, slots=True)
class ConfigReplaced:
    """A new valid config (a `monitor.config.Config`) took effect at `at`."""

    config: Any
    at: datetime


@dataclass(frozen=True, slots=True)
class ConfigRejected:
    """A config reload failed; the last good config keeps running."""

    at: datetime
    errors: tuple[str, ...]


Fact = (
    JobSeen
    | JobGone
    | TracebackSeen
    | Watermark
    | SourceHealth
    | Tick
    | ConfigReplaced
    | ConfigRejected
)


@dataclass(frozen=True, slots=True)
class Post:
    """Post a new alert. `key` is unique per alert for the product's whole life.

    `at` is when the alert became due (the breach instant, not when it was noticed).
    `details` holds the kind's JSON-able details (`monitor.core.kinds`) for rendering;
    untrusted text is escaped later. `thread` names the conversation it belongs to (a run:
    `run:<namespace>/<job>`): the first post of a thread is top-level, later ones reply
    under it.
    """

    kind: AlertKind
    batch: str
    key: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    thread: str | None = None

    @property
    def route(self) -> Route:
        """Where it goes: its kind's lane, for its batch (the notifier picks the channel)."""
        return Route.of(self.kind, self.batch)


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve the alert `key` (posted earlier): a `recovered` thread reply plus an edit.

    `kind` is the kind of the alert being resolved; `details` says how (e.g. how late).
    """

    key: str
    kind: AlertKind
    batch: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def recovered_key(self) -> str:
        """The key of the `recovered` message itself."""
        return f"recovered:{self.key}"

    @property
    def closed(self) -> str | None:
        """Why the alert was closed without a recovery (e.g. its batch left the config).

        A closed alert is only edited to say so; no `recovered` reply is posted.
        """
        reason = self.details.get("closed")
        return reason if isinstance(reason, str) else None


@dataclass(frozen=True, slots=True)
class Edit:
    """Re-render the posted alert `key` with new `details`: an open incident that grew.

    `revision` counts the edits of one alert, so each edit has its own outbox key.
    """

    key: str
    kind: AlertKind
    batch: str
    at: datetime
    revision: int
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def edit_key(self) -> str:
        return f"edit:{self.key}@{self.revision}"


@dataclass(frozen=True, slots=True)
class Remind:
    """A reminder that the incident `parent` is still open: a thread reply, also sent to the
    channel. `key` is `remind:<parent>@<n>` for the n-th reminder; `kind` the incident's."""

    key: str
    parent: str
    kind: AlertKind
    batch: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


Action = Post | Edit | Remind | Resolve


@dataclass(frozen=True, slots=True)
class Decision:
    """One judgement and why (`Reason`), for the log and `sla_monitor_decisions_total`."""

    batch: str
    reason: Reason
