"""The SLA config: pydantic models for everything SPEC's "Config (YAML)" allows.

Models validate values (durations, cron, timezones, regexes, one of deadline/freshness)
and forbid unknown keys; `monitor.config.load` reads YAML files and maps pydantic's
errors back to FILE:LINE:COL. Cross-field rules are field validators rather than model
validators so that they still run when a sibling field is broken: every error is
reported in one pass. A validated `Config` is immutable and swapped whole on reload.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import date, datetime, timedelta
from functools import cache, cached_property
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.core.calendars import WEEKDAYS, BusinessCalendar
from monitor.core.regex import Pattern, RegexError, compile_pattern
from monitor.core.schedule import (
    DURATION_PATTERN,
    DeadlineRule,
    cron_schedule,
    load_timezone,
    parse_duration,
    validate_cron,
)
from monitor.core.spec import BatchSpec

_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-6 or SUN-SAT"),
)
_BATCH_NAME = r"^[^\s@:]+$"


#: The longest duration a config may give: anything longer is a typo, and date arithmetic
#: with it (a deadline plus `99999999d`) would overflow inside the daemon.
MAX_DURATION = timedelta(days=3650)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"duration {value} has no unit: write e.g. '{value}s' or '{value}m'")
    else:
        try:
            parsed = parse_duration(value)
        except OverflowError:
            raise ValueError(f"duration {value!r} is too long: at most 3650d") from None
    if abs(parsed) > MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long: at most 3650d (10 years)")
    return parsed


def _check_regex(value: str) -> str:
    """Compiled by RE2 at load, so a pattern it refuses is a config error at its place."""
    try:
        compile_pattern(value)
    except RegexError as error:
        raise ValueError(f"invalid regex '{value}': {error}") from None
    return value


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _check_timezone(value: str) -> str:
    try:
        load_timezone(value)
    except ValueError as error:
        names = _zone_names()
        close = names.get(value.lower()) or next(
            iter(difflib.get_close_matches(value, names.values(), n=1, cutoff=0.75)), None
        )
        hint = f"; did you mean {close!r}?" if close else " (e.g. 'UTC', 'Asia/Tokyo')"
        raise ValueError(f"{error}{hint}") from error
    return value


def _check_cron(expression: str) -> str:
    """validate_cron, plus which field is wrong: 'invalid cron' alone helps nobody."""
    try:
        return validate_cron(expression)
    except ValueError as error:
        fields = expression.split()
        names = _CRON_FIELDS if len(fields) == 5 else (("second", "0-59"), *_CRON_FIELDS)
        if len(fields) != len(names):
            raise
        for position, ((name, allowed), text) in enumerate(zip(names, fields, strict=True)):
            probe = ["*"] * len(fields)
            probe[position] = text
            if not croniter.is_valid(" ".join(probe), second_at_beginning=True):
                seconds_first = " (6 fields put seconds first)" if len(fields) == 6 else ""
                raise ValueError(
                    f"invalid cron {expression!r}: {name} field {text!r} is out of range "
                    f"or malformed (allowed: {allowed}){seconds_first}"
                ) from error
        raise


def _check_batch_name(value: str) -> str:
    if not value:
        raise ValueError("batch name must not be empty")
    if not re.match(_BATCH_NAME, value):
        raise ValueError(
            f"batch name {value!r} must not contain spaces, '@' or ':' (it is part of alert keys)"
        )
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda delta: f"{int(delta.total_seconds())}s", return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}],
            "description": "A duration: a whole number and a unit (ms, s, m, h, d, w), "
            "e.g. 90s, 5m, 2h, 1d; or 0.",
        }
    ),
]
Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(
        description="Cron: 5 fields, or 6 with seconds first, in the batch's timezone.",
        examples=["0 9 * * *", "30 0 9 * * MON-FRI"],
    ),
]
Regex = Annotated[str, AfterValidator(_check_regex)]
TimezoneName = Annotated[
    str,
    AfterValidator(_check_timezone),
    Field(description="An IANA timezone name.", examples=["UTC", "Asia/Tokyo"]),
]
BatchName = Annotated[
    str,
    AfterValidator(_check_batch_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _BATCH_NAME,
            "description": "Unique batch name; no spaces, '@' or ':'.",
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StormSettings(_Strict):
    """When a channel's diagnostics become one digest message (SPEC "Digests")."""

    threshold: int = Field(
        10, ge=1, le=10_000, description="Top-level alerts per channel per window before a digest."
    )
    window: Duration = Field(
        timedelta(minutes=1),
        description="The counting window, and how often a digest goes out (at least 1s).",
    )

    @field_validator("window")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1) or value > timedelta(hours=1):
            raise ValueError("window must be between 1s and 1h")
        return value


class SlackDefaults(_Strict):
    """Where alerts go unless a batch says otherwise."""

    channel: str | None = Field(None, description="Default channel for every alert.")
    errors_channel: str | None = Field(
        None, description="Default channel of job_failed/traceback; absent: channel."
    )
    token_env: str = Field("SLACK_BOT_TOKEN", description="Env var holding the bot token.")
    token_file: str | None = Field(
        None,
        description="File holding the bot token (a mounted Secret); read at start, "
        "before token_env.",
    )
    remind: Duration = Field(
        timedelta(hours=24),
        description="An open incident is re-announced this often (0: never).",
    )
    storm: StormSettings = StormSettings()


class KubernetesSettings(_Strict):
    """Which Jobs the daemon watches."""

    namespaces: list[str] = Field(
        default_factory=list, description="Watched namespaces; empty: all namespaces."
    )
    pod_logs: bool = Field(
        False, description="Scan finished pods' logs through the API for tracebacks."
    )


class ArgoSettings(_Strict):
    """Argo Workflows as runs of batches (argoproj.io/v1alpha1)."""

    enabled: bool = Field(
        False, description="Also list and watch Argo Workflows; batches use match.workflow."
    )


class CloudLoggingSettings(_Strict):
    """The Cloud Logging source of tracebacks; absent: no such source."""

    project: str = Field(description="GCP project holding the cluster's logs.")
    cluster: str | None = Field(None, description="resource.labels.cluster_name")
    poll_interval: Duration = Field(
        timedelta(seconds=15), description="How often entries are listed (at least 1s)."
    )
    endpoint: str | None = Field(
        None, description="Override the API endpoint; http:// means REST, no credentials."
    )

    @field_validator("poll_interval")
    @classmethod
    def _poll_at_least_a_second(cls, value: timedelta) -> timedelta:
        # entries.list allows 60 requests/minute/project: sub-second polling only gets throttled.
        if value < timedelta(seconds=1):
            raise ValueError("poll_interval must be at least 1s")
        return value


class StateSettings(_Strict):
    """Where alert state survives restarts; neither given: file .sla-monitor/state.json."""

    configmap: str | None = Field(None, description="NAMESPACE/NAME of the state ConfigMap.")
    file: str | None = Field(None, description="Path of the state file.")

    @field_validator("configmap")
    @classmethod
    def _namespaced(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") != 1 or "" in value.split("/")):
            raise ValueError(f"configmap must be NAMESPACE/NAME, got {value!r}")
        return value

    @field_validator("file")
    @classmethod
    def _one_store(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("configmap") is not None:
            raise ValueError("give either 'configmap' or 'file', not both")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _default_weekends() -> list[Weekday]:
    return ["sat", "sun"]


class CalendarSettings(_Strict):
    """A named business-day calendar: weekends, holidays, extra working days."""

    country: str | None = Field(
        None,
        description="Public holidays by country: not available yet (list them in extra_holidays).",
    )
    subdivision: str | None = Field(None, description="With country: not available yet.")
    weekends: list[Weekday] = Field(
        default_factory=_default_weekends, description="Days of the week that are off."
    )
    extra_holidays: list[date] = Field(
        default_factory=list, description="Days off, e.g. 2026-12-31 (public holidays too)."
    )
    extra_working_days: list[date] = Field(
        default_factory=list, description="Business days whatever else says (wins over all)."
    )

    @field_validator("country", "subdivision")
    @classmethod
    def _not_yet(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "public holidays by country are not available: the holidays package "
                "requires python-dateutil<3 and kubernetes 37 requires >=3; list the "
                "holidays under extra_holidays"
            )
        return value

    @field_validator("weekends")
    @classmethod
    def _some_workday(cls, value: list[Weekday]) -> list[Weekday]:
        if len(set(value)) == 7:
            raise ValueError("weekends cannot be every day of the week")
        return value

    def calendar(self, name: str) -> BusinessCalendar:
        return BusinessCalendar(
            name=name,
            weekends=frozenset(WEEKDAYS.index(day) for day in self.weekends),
            extra_holidays=frozenset(self.extra_holidays),
            extra_working_days=frozenset(self.extra_working_days),
        )


class Silence(_Strict):
    """No alert for these batches from `from` (inclusive) to `until` (exclusive)."""

    model_config = ConfigDict(populate_by_name=True)

    batches: list[str] = Field(
        ..., min_length=1, description='Batch names, or ["*"] for every batch.'
    )
    starts: AwareDatetime = Field(..., alias="from", description="ISO 8601 with offset.")
    until: AwareDatetime = Field(..., description="ISO 8601 with offset (exclusive).")
    reason: str = Field("", description="Why: shown on the status page.")

    @field_validator("until")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts = info.data.get("starts")
        if starts is not None and value <= starts:
            raise ValueError("'until' must be after 'from'")
        return value

    def covers(self, batch: str, at: datetime) -> bool:
        """Whether an alert of `batch` due at `at` is silenced."""
        return self.starts <= at < self.until and ("*" in self.batches or batch in self.batches)


class HealthSettings(_Strict):
    """When an unreachable source becomes a monitor_degraded alert."""

    degraded_after: Duration = Field(
        timedelta(minutes=5),
        description="A source unreachable this long raises monitor_degraded.",
    )

    @field_validator("degraded_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("degraded_after must be positive")
        return value


class Match(_Strict):
    """All given fields must hold for a run to belong to the batch.

    A batch's runs are Jobs, or Argo Workflows when `workflow` is given (then `job_name`
    and `labels` apply to the Workflow's name and labels).
    """

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    namespace: str | None = Field(None, description="Namespace of the run.")
    cronjob: str | None = Field(None, description="Name of the owner CronJob.")
    job_name: Regex | None = Field(None, description="Regex searched in the run's name.")
    labels: dict[str, str] | None = Field(None, description="Labels the run must carry.")
    workflow: str | None = Field(
        None,
        description="Argo: a Workflow of this CronWorkflow or WorkflowTemplate (argo.enabled).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not (self.namespace or self.cronjob or self.job_name or self.labels or self.workflow):
            raise ValueError(
                "match must give at least one of namespace, cronjob, job_name, labels, workflow"
            )
        if self.cronjob and self.workflow:
            raise ValueError(
                "match gives both cronjob and workflow: a run is a Job or a Workflow, never both"
            )
        return self

    @cached_property
    def job_name_pattern(self) -> Pattern | None:
        return compile_pattern(self.job_name) if self.job_name is not None else None


class Route(_Strict):
    """Where one batch's (or unmatched Jobs') alerts go."""

    channel: str | None = Field(None, description="Slack channel; default: slack.channel.")
    errors_channel: str | None = Field(
        None,
        description="Channel of job_failed/traceback; default: channel, slack.errors_channel.",
    )
    mention: str | None = Field(
        None, description="Slack mention added to alerts, e.g. <!subteam^S0123>."
    )


class Notify(_Strict):
    """Per-kind switches; false silences that alert kind."""

    job_failed: bool = Field(True, description="Alert when a Job fails.")
    traceback: bool = Field(True, description="Alert on Python tracebacks in pod logs.")


class Batch(_Strict):
    """One batch: which Jobs it is, and its deadline or freshness bound."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["deadline"]}, {"required": ["freshness"]}]}
    )

    name: BatchName
    match: Match
    deadline: Cron | None = None
    freshness: Duration | None = Field(
        None,
        validate_default=True,
        description="Instead of deadline: a success at least this often.",
    )
    window: Duration | None = Field(
        None, description="Deadline window length; default: since the previous deadline."
    )
    grace: Duration = Field(timedelta(0), description="Extra time after each deadline.")
    timezone: TimezoneName | None = Field(None, description="Overrides the global timezone.")
    calendar: str | None = Field(
        None, description="Name of a calendar: only deadlines on its business days count."
    )
    max_runtime: Duration | None = Field(
        None, description="A run still running after this long is an overrun (a hang)."
    )
    at_risk: bool = Field(
        True,
        description="Warn before a deadline that past durations say will be missed "
        "(needs 5 successful runs).",
    )
    slack: Route = Route()
    notify: Notify = Notify()

    @field_validator("freshness")
    @classmethod
    def _one_schedule(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if "deadline" not in info.data:  # deadline itself is invalid: reported there
            return value
        has_deadline = info.data["deadline"] is not None
        if value is None and not has_deadline:
            raise ValueError("a batch needs exactly one of 'deadline' or 'freshness'")
        if value is not None and has_deadline:
            raise ValueError("give either 'deadline' or 'freshness', not both")
        if value is not None and value <= timedelta(0):
            raise ValueError("freshness must be positive")
        return value

    @field_validator("window", "grace")
    @classmethod
    def _deadline_only(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if info.data.get("deadline") is None and info.data.get("freshness") is not None:
            raise ValueError(f"'{info.field_name}' applies to deadline batches only")
        if info.field_name == "window" and value is not None and value <= timedelta(0):
            raise ValueError("window must be positive")
        return value


class Unmatched(_Strict):
    """Error alerts for Jobs that match no batch (metadata batch "")."""

    notify: Notify = Notify()
    slack: Route = Route()


class Config(_Strict):
    """The whole sla-monitor config."""

    model_config = ConfigDict(title="sla-monitor config")

    timezone: TimezoneName = Field("UTC", description="Default timezone of every batch.")
    slack: SlackDefaults = SlackDefaults()
    kubernetes: KubernetesSettings = KubernetesSettings()
    argo: ArgoSettings = ArgoSettings()
    cloud_logging: CloudLoggingSettings | None = None
    state: StateSettings = StateSettings()
    health: HealthSettings = HealthSettings()
    calendars: dict[str, CalendarSettings] = Field(
        default_factory=dict, description="Named business-day calendars batches can use."
    )
    silences: list[Silence] = Field(
        default_factory=list, description="Spans in which the listed batches post nothing."
    )
    batches: list[Batch] = Field(default_factory=list)
    unmatched: Unmatched | None = Field(
        None, description="Absent: Jobs that match no batch raise no alert."
    )

    def zone_of(self, batch: BatchSpec) -> ZoneInfo:
        return load_timezone(batch.timezone or self.timezone)

    def deadline_rule(self, batch: BatchSpec) -> DeadlineRule | None:
        """The timing of a deadline batch (None for freshness batches)."""
        if batch.deadline is None:
            return None
        return DeadlineRule(
            cron=cron_schedule(batch.deadline, self.zone_of(batch), self.calendar_of(batch)),
            window=batch.window,
            grace=batch.grace,
        )

    def calendar_of(self, batch: BatchSpec) -> BusinessCalendar | None:
        """The batch's business-day calendar (None: every day counts)."""
        if batch.calendar is None:
            return None
        return self._calendars[batch.calendar]

    @cached_property
    def _calendars(self) -> dict[str, BusinessCalendar]:
        return {name: settings.calendar(name) for name, settings in self.calendars.items()}

    @cached_property
    def _batches_by_name(self) -> dict[str, Batch]:
        return {batch.name: batch for batch in self.batches}

    def batch_named(self, name: str) -> Batch | None:
        """The batch called `name` (a dict lookup: asked once per batch on every restore)."""
        return self._batches_by_name.get(name)
