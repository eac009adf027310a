"""The SLA config: pydantic models for everything SPEC's "Config (YAML)" allows.

Models validate values (durations, cron, timezones, regexes, one of deadline/freshness)
and forbid unknown keys; `monitor.config_loader` reads YAML files and maps pydantic's
errors back to FILE:LINE:COL. A validated `Config` is immutable and swapped whole on reload.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from monitor.schedule import (
    DURATION_PATTERN,
    CronSchedule,
    DeadlineRule,
    load_timezone,
    parse_duration,
    validate_cron,
)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and value == 0:
        return timedelta(0)
    return parse_duration(value)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"invalid regex {value!r}: {error}") from error
    return value


def _check_timezone(value: str) -> str:
    load_timezone(value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda delta: f"{int(delta.total_seconds())}s", return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 90s, 5m, 2h, 1d.",
        }
    ),
]
Cron = Annotated[
    str,
    AfterValidator(validate_cron),
    Field(description="Cron: 5 fields, or 6 with seconds first, in the batch's timezone."),
]
Regex = Annotated[str, AfterValidator(_check_regex)]
TimezoneName = Annotated[
    str, AfterValidator(_check_timezone), Field(description="An IANA timezone name.")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackDefaults(_Strict):
    channel: str | None = Field(None, description="Default channel for every alert.")
    token_env: str = Field("SLACK_BOT_TOKEN", description="Env var holding the bot token.")


class KubernetesSettings(_Strict):
    namespaces: list[str] = Field(
        default_factory=list, description="Watched namespaces; empty: all namespaces."
    )
    pod_logs: bool = Field(
        False, description="Scan finished pods' logs through the API for tracebacks."
    )


class CloudLoggingSettings(_Strict):
    project: str
    cluster: str | None = Field(None, description="resource.labels.cluster_name")
    poll_interval: Duration = timedelta(seconds=15)
    endpoint: str | None = Field(
        None, description="Override the API endpoint; http:// means REST, no credentials."
    )


class StateSettings(_Strict):
    configmap: str | None = Field(None, description="NAMESPACE/NAME of the state ConfigMap.")
    file: str | None = Field(None, description="Path of the state file.")

    @model_validator(mode="after")
    def _one_store(self) -> Self:
        if self.configmap and self.file:
            raise ValueError("state: give either 'configmap' or 'file', not both")
        if self.configmap is not None and self.configmap.count("/") != 1:
            raise ValueError("state.configmap must be NAMESPACE/NAME")
        return self


class HealthSettings(_Strict):
    degraded_after: Duration = timedelta(minutes=5)


class Match(_Strict):
    """All given fields must hold for a Job to belong to the batch."""

    namespace: str | None = None
    cronjob: str | None = Field(None, description="Name of the owner CronJob.")
    job_name: Regex | None = Field(None, description="Regex searched in the Job name.")
    labels: dict[str, str] | None = Field(None, description="Labels the Job must carry.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not (self.namespace or self.cronjob or self.job_name or self.labels):
            raise ValueError(
                "match must give at least one of namespace, cronjob, job_name, labels"
            )
        return self

    @cached_property
    def job_name_pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.job_name) if self.job_name is not None else None


class Route(_Strict):
    channel: str | None = None
    mention: str | None = Field(
        None, description="Slack mention added to alerts, e.g. <!subteam^S0123>."
    )


class Notify(_Strict):
    job_failed: bool = True
    traceback: bool = True


class Batch(_Strict):
    name: str = Field(min_length=1, pattern=r"^[^\s@:]+$")
    match: Match
    deadline: Cron | None = None
    window: Duration | None = None
    grace: Duration = timedelta(0)
    freshness: Duration | None = None
    timezone: TimezoneName | None = Field(None, description="Overrides the global timezone.")
    slack: Route = Route()
    notify: Notify = Notify()

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.deadline is None) == (self.freshness is None):
            raise ValueError("a batch needs exactly one of 'deadline' or 'freshness'")
        if self.freshness is not None and (self.window is not None or self.grace):
            raise ValueError("'window' and 'grace' apply to 'deadline' batches only")
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("'window' must be positive")
        if self.freshness is not None and self.freshness <= timedelta(0):
            raise ValueError("'freshness' must be positive")
        return self


class Unmatched(_Strict):
    notify: Notify = Notify()
    slack: Route = Route()


class Config(_Strict):
    timezone: TimezoneName = "UTC"
    slack: SlackDefaults = SlackDefaults()
    kubernetes: KubernetesSettings = KubernetesSettings()
    cloud_logging: CloudLoggingSettings | None = None
    state: StateSettings = StateSettings()
    health: HealthSettings = HealthSettings()
    batches: list[Batch] = Field(default_factory=list)
    unmatched: Unmatched | None = None

    def zone_of(self, batch: Batch) -> ZoneInfo:
        return load_timezone(batch.timezone or self.timezone)

    def deadline_rule(self, batch: Batch) -> DeadlineRule | None:
        """The timing of a deadline batch (None for freshness batches)."""
        if batch.deadline is None:
            return None
        return DeadlineRule(
            cron=CronSchedule(batch.deadline, self.zone_of(batch)),
            window=batch.window,
            grace=batch.grace,
        )

    def batch_named(self, name: str) -> Batch | None:
        return next((batch for batch in self.batches if batch.name == name), None)
