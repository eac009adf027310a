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
from pydantic.dataclasses import dataclass as pydantic_dataclass

from monitor.config.cadence import rarity
from monitor.config.yaml_nodes import shown
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


#: Above any bound below, and still far from what date arithmetic can hold: a parsed
#: `99999999d` is refused before it can overflow anything.
_PARSE_LIMIT = timedelta(days=100_000)
#: Duration texts longer than this are never valid (the longest allowed, `366d`, is four).
_DURATION_TEXT = 32


def _format_bound(delta: timedelta) -> str:
    """`1h`, `366d`, `1s`: bounds as a config would write them."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse(value: Any) -> timedelta:
    """A config duration: text like `5m`, or 0, or a timedelta (from Python callers)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)
        if abs(value) < 10**12:
            raise ValueError(f"duration {value} has no unit: write e.g. '{value}s' or '{value}m'")
        raise ValueError("duration has no unit: write e.g. '90s' or '5m'")
    if isinstance(value, float):
        raise ValueError(
            f"duration {shown(str(value))} is not a whole number and a unit: write e.g. "
            "'90s' or '5m'"
        )
    if isinstance(value, str) and len(value) > _DURATION_TEXT:
        if re.match(DURATION_PATTERN, value):
            raise OverflowError
        raise ValueError(
            f"invalid duration {shown(value)}: expected a number and a unit "
            "(ms, s, m, h, d, w), e.g. '90s', '5m', '2h', '1d'"
        )
    return parse_duration(value)


def _duration_between(low: timedelta, high: timedelta, *, off: bool = False) -> BeforeValidator:
    """A duration field's validator: parsed, then within [low, high] (or 0 when `off`).

    Every duration is bounded: an unbounded one is a typo waiting to overflow a deadline
    plus `99999999d` inside the daemon, or to poll an API a thousand times a second.
    """

    def check(value: Any, info: ValidationInfo) -> timedelta:
        name = info.field_name or "duration"
        try:
            parsed = _parse(value)
            if abs(parsed) > _PARSE_LIMIT:
                raise OverflowError
        except OverflowError:
            raise ValueError(
                f"{name} {shown(str(value))} is too long: at most {_format_bound(high)}"
            ) from None
        if off and parsed == timedelta(0):
            return parsed
        given = shown(str(value)) if not isinstance(value, timedelta) else _format_bound(parsed)
        never = " (or 0: never)" if off else ""
        if parsed < low:
            raise ValueError(f"{name} {given} is too short: at least {_format_bound(low)}{never}")
        if parsed > high:
            raise ValueError(f"{name} {given} is too long: at most {_format_bound(high)}")
        return parsed

    return BeforeValidator(check)


def _duration_schema(low: timedelta, high: timedelta, *, off: bool = False) -> WithJsonSchema:
    zero = [{"const": 0}] if off or low == timedelta(0) else []
    bounds = f"from {_format_bound(low)} to {_format_bound(high)}"
    if off:
        bounds += ", or 0: never"
    return WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, *zero],
            "description": "A duration: a whole number and a unit (ms, s, m, h, d, w), "
            f"e.g. 90s, 5m, 2h, 1d; {bounds}.",
        }
    )


def _serialize_duration(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
#: The longest a batch's own durations may be: an SLA looser than yearly is no SLA.
MAX_BATCH_DURATION = timedelta(days=366)
#: Dates a calendar or silence may name: beyond them a date is a typo (2206 for 2026), or
#: close enough to year 1 or 9999 to overflow when the daemon adds a day or an offset.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2199, 12, 31)

#: Longest names and texts: Kubernetes' own limits for names and labels (a DNS label is 63
#: characters, a qualified label key 317), Slack's for channels; others are generous.
_NAME = 253
_CHANNEL = 100
_TEXT = 500
_PATH = 4096
#: Most items a list or mapping may hold. Each watched namespace is one watch per resource.
MAX_NAMESPACES = 100
MAX_BATCHES = 10_000
MAX_CALENDAR_DAYS = 1_000
MAX_CALENDARS = 100
MAX_LIST = 1_000
MAX_LABELS = 64
_LABEL_KEY = 317
_LABEL_VALUE = 63
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
#: Longest IANA name is 32 characters; a longer text is not a zone.
_ZONE_NAME = 64
#: Longest cron expression: every field spelled value by value fits.
MAX_CRON = 200
MAX_REGEX = 1000
#: Longest batch name: it is part of every alert key kept in the state.
MAX_BATCH_NAME = 200


def _check_regex(value: str) -> str:
    """Compiled by RE2 at load, so a pattern it refuses is a config error at its place."""
    if len(value) > MAX_REGEX:
        raise ValueError(f"regex is too long: {len(value)} characters, at most {MAX_REGEX}")
    try:
        compile_pattern(value)
    except (RegexError, UnicodeError) as error:
        # As written (a regex's backslashes doubled by repr would mislead), if printable.
        text = f"'{value}'" if value.isprintable() and len(value) <= 80 else shown(value)
        raise ValueError(f"invalid regex {text}: {error}") from None
    return value


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _check_timezone(value: str) -> str:
    if len(value) > _ZONE_NAME or not value.isprintable():
        # Not looked up at all: the lookup opens a file of that name.
        raise ValueError(f"unknown IANA timezone {shown(value)} (e.g. 'UTC', 'Asia/Tokyo')")
    try:
        load_timezone(value)
    except (ValueError, OSError) as error:
        names = _zone_names()
        close = names.get(value.lower()) or next(
            iter(difflib.get_close_matches(value, names.values(), n=1, cutoff=0.75)), None
        )
        hint = f"; did you mean {close!r}?" if close else " (e.g. 'UTC', 'Asia/Tokyo')"
        raise ValueError(f"unknown IANA timezone {value!r}{hint}") from error
    return value


def _check_cron(expression: str) -> str:
    """validate_cron, plus which field is wrong ('invalid cron' alone helps nobody), and
    whether its deadlines come at least once a year."""
    if len(expression) > MAX_CRON:
        raise ValueError(f"cron is too long: {len(expression)} characters, at most {MAX_CRON}")
    try:
        validate_cron(expression)
    except ValueError as error:
        fields = expression.split()
        names = _CRON_FIELDS if len(fields) == 5 else (("second", "0-59"), *_CRON_FIELDS)
        if len(fields) == len(names):
            for position, ((name, allowed), text) in enumerate(zip(names, fields, strict=True)):
                probe = ["*"] * len(fields)
                probe[position] = text
                if not croniter.is_valid(" ".join(probe), second_at_beginning=True):
                    seconds_first = " (6 fields put seconds first)" if len(fields) == 6 else ""
                    raise ValueError(
                        f"invalid cron {expression!r}: {name} field {text!r} is out of range "
                        f"or malformed (allowed: {allowed}){seconds_first}"
                    ) from error
            if "failed to find next date" in str(error):
                raise ValueError(
                    f"cron {expression!r} never fires: no date has that day of the month "
                    "in those months"
                ) from error
        raise
    rare = rarity(expression)
    if rare is not None:
        raise ValueError(rare)
    return expression


def _check_batch_name(value: str) -> str:
    if not value:
        raise ValueError("batch name must not be empty")
    if len(value) > MAX_BATCH_NAME:
        raise ValueError(
            f"batch name is too long: {len(value)} characters, at most {MAX_BATCH_NAME}"
        )
    if not re.match(_BATCH_NAME, value):
        raise ValueError(
            f"batch name {value!r} must not contain spaces, '@' or ':' (it is part of alert keys)"
        )
    return value


def _check_namespace(value: str) -> str:
    """A Kubernetes namespace name: any other would never match, nor could it be watched."""
    if not re.match(_DNS_LABEL, value):
        raise ValueError(
            f"namespace {shown(value)} is not a Kubernetes namespace name (lowercase letters, "
            "digits and '-', at most 63 characters)"
        )
    return value


def _check_date(value: date) -> date:
    if not FIRST_DATE <= value <= LAST_DATE:
        raise ValueError(f"date {value.isoformat()} is out of range: {FIRST_DATE} to {LAST_DATE}")
    return value


def _check_instant(value: datetime) -> datetime:
    if not FIRST_DATE <= value.date() <= LAST_DATE:
        raise ValueError(f"time {value.isoformat()} is out of range: {FIRST_DATE} to {LAST_DATE}")
    return value


BatchDuration = Annotated[
    timedelta,
    _duration_between(_SECOND, MAX_BATCH_DURATION),
    PlainSerializer(_serialize_duration, return_type=str),
    _duration_schema(_SECOND, MAX_BATCH_DURATION),
]
Grace = Annotated[
    timedelta,
    _duration_between(timedelta(0), MAX_BATCH_DURATION),
    PlainSerializer(_serialize_duration, return_type=str),
    _duration_schema(timedelta(0), MAX_BATCH_DURATION),
]
Remind = Annotated[
    timedelta,
    _duration_between(_MINUTE, MAX_BATCH_DURATION, off=True),
    PlainSerializer(_serialize_duration, return_type=str),
    _duration_schema(_MINUTE, MAX_BATCH_DURATION, off=True),
]
#: Storm windows and Cloud Logging polls: a second (the API allows 60 lists a minute per
#: project) to an hour (longer would sit on tracebacks and digests for half a day).
ShortInterval = Annotated[
    timedelta,
    _duration_between(_SECOND, _HOUR),
    PlainSerializer(_serialize_duration, return_type=str),
    _duration_schema(_SECOND, _HOUR),
]
DegradedAfter = Annotated[
    timedelta,
    _duration_between(_SECOND, _DAY),
    PlainSerializer(_serialize_duration, return_type=str),
    _duration_schema(_SECOND, _DAY),
]
Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(
        description="Cron: 5 fields, or 6 with seconds first, in the batch's timezone; "
        "deadlines at least once a year.",
        examples=["0 9 * * *", "30 0 9 * * MON-FRI"],
        json_schema_extra={"maxLength": MAX_CRON},
    ),
]
Regex = Annotated[
    str, AfterValidator(_check_regex), Field(json_schema_extra={"maxLength": MAX_REGEX})
]
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
            "maxLength": MAX_BATCH_NAME,
            "description": "Unique batch name; no spaces, '@' or ':'.",
        }
    ),
]
Namespace = Annotated[
    str,
    AfterValidator(_check_namespace),
    WithJsonSchema({"type": "string", "pattern": _DNS_LABEL}),
]
#: Free text handed to Kubernetes, Slack or Cloud Logging as it is.
Name = Annotated[str, Field(max_length=_NAME)]
Channel = Annotated[str, Field(max_length=_CHANNEL)]
Text = Annotated[str, Field(max_length=_TEXT)]
FilePath = Annotated[str, Field(min_length=1, max_length=_PATH)]
LabelKey = Annotated[str, Field(max_length=_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=_LABEL_VALUE)]
Day = Annotated[date, AfterValidator(_check_date)]
Instant = Annotated[AwareDatetime, AfterValidator(_check_instant)]


class _Strict(BaseModel):
    """Unknown keys are errors; a validated config is immutable.

    What a config holds thousands of (batches and their matches) are frozen, slotted
    pydantic dataclasses with the same rules instead: a model instance keeps a `__dict__`
    and a set of the fields given, ~1 KB for a batch and its match, where a slotted
    dataclass keeps its values only (10,000 batches take 5 MB, not 15).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class StormSettings(_Strict):
    """When a channel's diagnostics become one digest message (SPEC "Digests")."""

    threshold: int = Field(
        10, ge=1, le=10_000, description="Top-level alerts per channel per window before a digest."
    )
    window: ShortInterval = Field(
        timedelta(minutes=1),
        description="The counting window, and how often a digest goes out (1s to 1h).",
    )


class SlackDefaults(_Strict):
    """Where alerts go unless a batch says otherwise."""

    channel: Channel | None = Field(None, description="Default channel for every alert.")
    errors_channel: Channel | None = Field(
        None, description="Default channel of job_failed/traceback; absent: channel."
    )
    token_env: Name = Field("SLACK_BOT_TOKEN", description="Env var holding the bot token.")
    token_file: FilePath | None = Field(
        None,
        description="File holding the bot token (a mounted Secret); read at start, "
        "before token_env.",
    )
    remind: Remind = Field(
        timedelta(hours=24),
        description="An open incident is re-announced this often (0: never).",
    )
    storm: StormSettings = StormSettings()


class KubernetesSettings(_Strict):
    """Which Jobs the daemon watches."""

    namespaces: list[Namespace] = Field(
        default_factory=list,
        max_length=MAX_NAMESPACES,
        description="Watched namespaces (one watch each); empty: all namespaces.",
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
    """The Cloud Logging source of tracebacks and Job events; absent: no such source."""

    project: Name = Field(description="GCP project holding the cluster's logs.")
    cluster: Name | None = Field(None, description="resource.labels.cluster_name")
    # entries.list allows 60 requests/minute/project: sub-second polling only gets throttled.
    poll_interval: ShortInterval = Field(
        timedelta(seconds=15), description="How often entries are listed (1s to 1h)."
    )
    endpoint: FilePath | None = Field(
        None, description="Override the API endpoint; http:// means REST, no credentials."
    )
    events: bool = Field(
        True,
        description="Also read the Kubernetes Job events GKE keeps in logs/events: a second "
        "witness of completions, for Jobs deleted while the daemon was down.",
    )


class StateSettings(_Strict):
    """Where alert state survives restarts; neither given: file .sla-monitor/state.json."""

    configmap: Name | None = Field(None, description="NAMESPACE/NAME of the state ConfigMap.")
    file: FilePath | None = Field(None, description="Path of the state file.")

    @field_validator("configmap")
    @classmethod
    def _namespaced(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") != 1 or "" in value.split("/")):
            raise ValueError(f"configmap must be NAMESPACE/NAME, got {shown(value)}")
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

    country: Name | None = Field(
        None,
        description="Public holidays by country: not available yet (list them in extra_holidays).",
    )
    subdivision: Name | None = Field(None, description="With country: not available yet.")
    weekends: list[Weekday] = Field(
        default_factory=_default_weekends,
        max_length=7,
        description="Days of the week that are off.",
    )
    extra_holidays: list[Day] = Field(
        default_factory=list,
        max_length=MAX_CALENDAR_DAYS,
        description="Days off, e.g. 2026-12-31 (public holidays too).",
    )
    extra_working_days: list[Day] = Field(
        default_factory=list,
        max_length=MAX_CALENDAR_DAYS,
        description="Business days whatever else says (wins over all).",
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

    batches: list[Name] = Field(
        ...,
        min_length=1,
        max_length=MAX_LIST,
        description='Batch names, or ["*"] for every batch.',
    )
    starts: Instant = Field(..., alias="from", description="ISO 8601 with offset.")
    until: Instant = Field(..., description="ISO 8601 with offset (exclusive).")
    reason: Text = Field("", description="Why: shown on the status page.")

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

    degraded_after: DegradedAfter = Field(
        timedelta(minutes=5),
        description="A source unreachable this long raises monitor_degraded (1s to 1d).",
    )


@pydantic_dataclass(
    frozen=True,
    slots=True,
    config=ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}),
)
class Match:
    """All given fields must hold for a run to belong to the batch.

    A batch's runs are Jobs, or Argo Workflows when `workflow` is given (then `job_name`
    and `labels` apply to the Workflow's name and labels).
    """

    namespace: Namespace | None = Field(default=None, description="Namespace of the run.")
    cronjob: Name | None = Field(default=None, description="Name of the owner CronJob.")
    job_name: Regex | None = Field(default=None, description="Regex searched in the run's name.")
    labels: dict[LabelKey, LabelValue] | None = Field(
        default=None, max_length=MAX_LABELS, description="Labels the run must carry."
    )
    workflow: Name | None = Field(
        default=None,
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

    @property
    def job_name_pattern(self) -> Pattern | None:
        """The compiled `job_name` (compiled when asked: the batch index asks once)."""
        return compile_pattern(self.job_name) if self.job_name is not None else None


class Route(_Strict):
    """Where one batch's (or unmatched Jobs') alerts go."""

    channel: Channel | None = Field(None, description="Slack channel; default: slack.channel.")
    errors_channel: Channel | None = Field(
        None,
        description="Channel of job_failed/traceback; default: channel, slack.errors_channel.",
    )
    mention: Text | None = Field(
        None, description="Slack mention added to alerts, e.g. <!subteam^S0123>."
    )


class Notify(_Strict):
    """Per-kind switches; false silences that alert kind."""

    job_failed: bool = Field(True, description="Alert when a Job fails.")
    traceback: bool = Field(True, description="Alert on Python tracebacks in pod logs.")


@pydantic_dataclass(
    frozen=True,
    slots=True,
    config=ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["deadline"]}, {"required": ["freshness"]}]},
    ),
)
class Batch:
    """One batch: which Jobs it is, and its deadline or freshness bound."""

    name: BatchName
    match: Match
    deadline: Cron | None = None
    freshness: BatchDuration | None = Field(
        default=None,
        validate_default=True,
        description="Instead of deadline: a success at least this often.",
    )
    window: BatchDuration | None = Field(
        default=None, description="Deadline window length; default: since the previous deadline."
    )
    grace: Grace = Field(default=timedelta(0), description="Extra time after each deadline.")
    timezone: TimezoneName | None = Field(
        default=None, description="Overrides the global timezone."
    )
    calendar: Name | None = Field(
        default=None, description="Name of a calendar: only deadlines on its business days count."
    )
    max_runtime: BatchDuration | None = Field(
        default=None, description="A run still running after this long is an overrun (a hang)."
    )
    at_risk: bool = Field(
        default=True,
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
        return value

    @field_validator("window", "grace")
    @classmethod
    def _deadline_only(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if info.data.get("deadline") is None and info.data.get("freshness") is not None:
            raise ValueError(f"'{info.field_name}' applies to deadline batches only")
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
    calendars: dict[Name, CalendarSettings] = Field(
        default_factory=dict,
        max_length=MAX_CALENDARS,
        description="Named business-day calendars batches can use.",
    )
    silences: list[Silence] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Spans in which the listed batches post nothing.",
    )
    batches: list[Batch] = Field(default_factory=list, max_length=MAX_BATCHES)
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
