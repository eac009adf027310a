"""What the core needs to know of the config, as protocols.

The core sits below the config layer: it never imports the pydantic model. The model in
`monitor.config` satisfies these protocols structurally, and everything the engine asks of
a config or a batch is spelled out here — a reader of the core sees its whole input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from monitor.core.calendars import BusinessCalendar
from monitor.core.regex import Pattern
from monitor.core.schedule import DeadlineRule


class MatchSpec(Protocol):
    """Which runs belong to a batch (every given field must hold); with `workflow` the
    runs are Argo Workflows of that CronWorkflow or WorkflowTemplate, otherwise Jobs."""

    @property
    def namespace(self) -> str | None: ...
    @property
    def cronjob(self) -> str | None: ...
    @property
    def workflow(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str] | None: ...
    @property
    def job_name_pattern(self) -> Pattern | None: ...


class RouteSpec(Protocol):
    """Where a batch's alerts go: a channel and who is mentioned (None: the defaults)."""

    @property
    def channel(self) -> str | None: ...
    @property
    def errors_channel(self) -> str | None: ...
    @property
    def mention(self) -> str | None: ...


class NotifySpec(Protocol):
    """Per-batch switches of the failure signals."""

    @property
    def job_failed(self) -> bool: ...
    @property
    def traceback(self) -> bool: ...


class BatchSpec(Protocol):
    """One batch: its name, which runs are its own, its SLA and its routing."""

    @property
    def name(self) -> str: ...
    @property
    def match(self) -> MatchSpec: ...
    @property
    def deadline(self) -> str | None: ...
    @property
    def freshness(self) -> timedelta | None: ...
    @property
    def window(self) -> timedelta | None: ...
    @property
    def grace(self) -> timedelta: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def calendar(self) -> str | None: ...
    @property
    def max_runtime(self) -> timedelta | None: ...
    @property
    def at_risk(self) -> bool: ...
    @property
    def slack(self) -> RouteSpec: ...
    @property
    def notify(self) -> NotifySpec: ...


class UnmatchedSpec(Protocol):
    """Failure signals of runs that match no batch."""

    @property
    def notify(self) -> NotifySpec: ...
    @property
    def slack(self) -> RouteSpec: ...


class RemindSpec(Protocol):
    @property
    def remind(self) -> timedelta: ...


class HealthSpec(Protocol):
    @property
    def degraded_after(self) -> timedelta: ...


class SilenceSpec(Protocol):
    """A span in which some batches post nothing (`from` inclusive, `until` exclusive)."""

    @property
    def until(self) -> datetime: ...

    def covers(self, batch: str, at: datetime) -> bool: ...


class ConfigSpec(Protocol):
    """A whole validated config, as the engine reads it."""

    @property
    def batches(self) -> Sequence[BatchSpec]: ...
    @property
    def slack(self) -> RemindSpec: ...
    @property
    def health(self) -> HealthSpec: ...
    @property
    def unmatched(self) -> UnmatchedSpec | None: ...
    @property
    def silences(self) -> Sequence[SilenceSpec]: ...

    def zone_of(self, batch: BatchSpec) -> ZoneInfo: ...
    def deadline_rule(self, batch: BatchSpec) -> DeadlineRule | None: ...
    def calendar_of(self, batch: BatchSpec) -> BusinessCalendar | None: ...
    def batch_named(self, name: str) -> BatchSpec | None: ...
