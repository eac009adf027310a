"""Engine actions as Slack messages: Block Kit blocks, a plain-text fallback, metadata.

One layout per alert kind, written for a person woken at night: what happened, to which
batch, since when, how late, which Job/pod and why, and where to look next. Rendering is
a pure function of the action and `RenderSettings`, so previews, dry-run output and the
real posts are the same thing.

Every value taken from `details` (cluster and log text) is escaped and cut to Slack's
limits; the batch's `mention` from config is the only text passed through verbatim.
Missing details keys are tolerated: a layout shows what it has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.core.facts import Post, Remind, Resolve
from monitor.notify.escape import (
    CONTEXT_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    MESSAGE_TEXT_LIMIT,
    SECTION_FIELD_LIMIT,
    SECTION_TEXT_LIMIT,
    TRUNCATED,
    code_block,
    code_text,
    cut,
    escape,
    one_line,
)
from monitor.notify.links import Target, kubectl_commands, logs_explorer_url

EVENT_TYPE = "sla_monitor_alert"
_NAME = 253  # the longest Kubernetes object name
_SOURCES = {
    "kubernetes": "the Kubernetes API",
    "cloud_logging": "Cloud Logging",
    "slack": "Slack",
    "config": "the config",
}

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """Where links point: Logs Explorer when Cloud Logging is configured, else kubectl."""

    logs_project: str | None = None
    logs_cluster: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """What `chat.postMessage`/`chat.update` receive, apart from channel and thread."""

    text: str
    blocks: list[Block]
    metadata: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks, "metadata": self.metadata}


# -- formatting helpers --------------------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _when(value: Any, zone: Any = None) -> str:
    """An instant as a person reads it, in the batch's timezone when known (escaped)."""
    parsed = _instant(value)
    if parsed is None:
        return "unknown" if value is None else one_line(value, 64)
    if isinstance(zone, str):
        with contextlib.suppress(ValueError, KeyError, OSError):
            parsed = parsed.astimezone(ZoneInfo(zone))
    pattern = "%Y-%m-%d %H:%M" if parsed.second == 0 else "%Y-%m-%d %H:%M:%S"
    label = parsed.tzname() or parsed.strftime("%z")
    return escape(f"{parsed.strftime(pattern)} {label}")


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "unknown"
    total = int(seconds)
    if total < 0:
        return f"-{_duration(-total)}"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{amount} {unit}" for amount, unit in parts if amount][:2]
    return " ".join(shown) or "0 s"


def _name(value: Any) -> str:
    return one_line(value, _NAME) if value else "?"


def _batch(batch: str) -> str:
    return escape(batch) if batch else "(no batch)"


def _source_name(source: Any) -> str:
    return _SOURCES.get(str(source), one_line(source or "a source", 100))


def _of_batch(batch: str) -> str:
    return f", batch {escape(batch)}" if batch else ", no batch"


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, HEADER_TEXT_LIMIT)}}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_LIMIT)}}


def _fields(pairs: list[tuple[str, str]]) -> Block:
    fields = [
        {"type": "mrkdwn", "text": cut(f"*{label}*\n{value}", SECTION_FIELD_LIMIT)}
        for label, value in pairs[:10]
    ]
    return {"type": "section", "fields": fields}


def _context(*texts: str) -> Block:
    elements = [{"type": "mrkdwn", "text": cut(text, CONTEXT_TEXT_LIMIT)} for text in texts[:10]]
    return {"type": "context", "elements": elements}


def _lead(mention: str | None, text: str) -> str:
    return f"{mention} {text}" if mention else text


def _metadata(kind: str, batch: str, key: str) -> dict[str, Any]:
    # Metadata is never rendered; escaping only changes keys no Kubernetes name can form.
    payload = {"kind": kind, "batch": escape(batch), "key": escape(key)}
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def _finish(text: str, blocks: list[Block], metadata: dict[str, Any]) -> Message:
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], _context(TRUNCATED)]
    return Message(cut(text, MESSAGE_TEXT_LIMIT), blocks, metadata)


def _where_to_look(target: Target | None, settings: RenderSettings) -> list[Block]:
    if target is None or not target.namespace:
        return []
    if settings.logs_project:
        url = logs_explorer_url(target, settings.logs_project, settings.logs_cluster)
        label = "pod logs" if target.pod else "Job logs"
        return [_context(f":mag: <{escape(url)}|Open the {label} in Logs Explorer>")]
    commands = "\n".join(code_text(command) for command in kubectl_commands(target))
    return [_context(f":mag: Look with:\n```{commands}```")]


def _target(details: Mapping[str, Any], around: datetime | None) -> Target | None:
    namespace = details.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        return None

    def text(key: str) -> str | None:
        value = details.get(key)
        return value if isinstance(value, str) and value else None

    return Target(namespace, text("job"), text("pod"), text("container"), around)


# -- alerts --------------------------------------------------------------------------------


def _missed_deadline(
    post: Post, d: Mapping[str, Any], mention: str | None
) -> tuple[str, list[Block]]:
    zone = d.get("timezone")
    batch = _batch(post.batch)
    deadline = _when(d.get("deadline"), zone)
    grace = d.get("grace_seconds")
    grace_text = f" (+{_duration(grace)} grace)" if isinstance(grace, int) and grace > 0 else ""
    last = _when(d["last_success"], zone) if d.get("last_success") else None
    last_text = last or "none seen since the monitor started"
    text = f"Missed deadline: {batch} did not complete by {deadline}{grace_text}."
    count = d.get("missed_count")
    spell = ""
    if isinstance(count, int) and count > 1:
        latest = _when(d.get("latest_deadline"), zone)
        spell = f"\n*{count} deadlines missed* in a row, the latest *{latest}*."
        text += f" {count} deadlines missed in a row, the latest {latest}."
    run_text = _latest_run(d.get("latest_run"), zone, _instant(d.get("window_start")))
    if run_text:
        text += f" {run_text.replace('*', '').replace('`', '')}."
    blocks = [
        _header(f"🚨 Missed deadline: {batch}"),
        _section(
            _lead(
                mention,
                f"*{batch}* did not complete by its deadline *{deadline}*{grace_text}.\n"
                f"Last success: *{last_text}*.{spell}" + (f"\n{run_text}." if run_text else ""),
            )
        ),
        _fields(
            [
                ("Deadline", deadline),
                (
                    "Window",
                    f"{_when(d.get('window_start'), zone)} → {_when(d.get('window_end'), zone)}",
                ),
                ("Grace", _duration(grace) if isinstance(grace, int) else "0 s"),
                ("Last success", last_text),
            ]
        ),
    ]
    return text, blocks


def _latest_run(run: Any, zone: Any, window_start: datetime | None = None) -> str:
    """Why it missed, from the latest run: never started, running (maybe hung), failed, or
    succeeded outside the window. Empty when the alert predates this detail."""
    if not isinstance(run, Mapping):
        return ""
    outcome = run.get("outcome")
    if outcome == "none":
        return "No run of this batch has been seen since the monitor started"
    name = f"`{_name(run.get('name'))}`"
    if outcome == "running":
        text = f"Latest run {name} has been running for *{_duration(run.get('running_seconds'))}*"
        p90 = run.get("p90_seconds")
        if isinstance(p90, int):
            text += f" (p90 duration {_duration(p90)})"
            if run.get("hung"):
                text += ": probably hung"
        return text
    if outcome == "failed":
        reason = one_line(run.get("reason") or "unknown reason", 200)
        return f"Latest run {name} failed: *{reason}* (at {_when(run.get('finished'), zone)})"
    if outcome == "succeeded":
        started = _instant(run.get("started"))
        if window_start is not None and started is not None and started <= window_start:
            return (
                f"No run started since {_when(run.get('started'), zone)}: the latest, "
                f"{name}, succeeded at {_when(run.get('finished'), zone)}, before this "
                "deadline's window"
            )
        return (
            f"Latest run {name} succeeded at {_when(run.get('finished'), zone)}, "
            "outside this deadline's window"
        )
    return ""


def _stale(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    batch = _batch(post.batch)
    bound = _duration(d.get("freshness_seconds"))
    last = _when(d["last_success"]) if d.get("last_success") else "none seen"
    since = _when(d.get("stale_since") or post.at.isoformat())
    text = f"Stale: {batch} has had no successful run for over {bound} (last success: {last})."
    blocks = [
        _header(f"🕰️ Stale: {batch}"),
        _section(
            _lead(
                mention,
                f"*{batch}* must succeed at least every *{bound}*, and has not: "
                f"stale since *{since}*.",
            )
        ),
        _fields([("Freshness bound", bound), ("Last success", last), ("Stale since", since)]),
    ]
    return text, blocks


_AT_RISK_WHY = {
    "not_started": "no run has started, and its runs usually take *{expected}*",
    "running_long": "run `{run}` (started {started}) has already run longer than the "
    "usual *{expected}*",
    "started_late": "run `{run}` started only at {started}; its runs usually take *{expected}*",
}


def _at_risk(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    batch = _batch(post.batch)
    zone = d.get("timezone")
    deadline = _when(d.get("deadline"), zone)
    expected = _duration(d.get("expected_seconds"))
    why = _AT_RISK_WHY.get(str(d.get("why")), "past durations say it will be late").format(
        expected=expected, run=_name(d.get("run")), started=_when(d.get("started"), zone)
    )
    last = d.get("last_success")
    text = f"At risk: {batch} will probably miss its {deadline} deadline."
    lead = f"*{batch}* will probably miss its *{deadline}* deadline: {why}."
    blocks = [
        _header(f"⏳ At risk: {batch}"),
        _section(_lead(mention, lead)),
        _fields(
            [
                ("Deadline", deadline),
                ("Judged at", _when(d.get("decided_at"), zone)),
                ("Usual duration (p90)", expected),
                ("Last success", _when(last, zone) if last else "none seen"),
            ]
        ),
    ]
    return text, blocks


def _overrun(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    run = f"{_name(d.get('namespace'))}/{_name(d.get('job'))}"
    noun = "Workflow" if d.get("run_kind") == "Workflow" else "Job"
    zone = d.get("timezone")
    limit = _duration(d.get("max_runtime_seconds"))
    started = _when(d.get("started"), zone)
    text = f"Overrun: {noun} {run} has run longer than {limit}{_of_batch(post.batch)}."
    lead = (
        f"{noun} `{run}` started at {started} and is still running after *{limit}*: probably hung."
    )
    if isinstance(d.get("p90_seconds"), int):
        lead += f" Its successful runs usually take {_duration(d['p90_seconds'])} (p90)."
    blocks = [
        _header(f"🐢 Overrun: {_batch(post.batch) if post.batch else run}"),
        _section(_lead(mention, lead)),
        _fields([("Batch", _batch(post.batch)), ("Started", started), ("max_runtime", limit)]),
    ]
    return text, blocks


def _job_failed(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    job = f"{_name(d.get('namespace'))}/{_name(d.get('job'))}"
    noun = "Workflow" if d.get("run_kind") == "Workflow" else "Job"
    reason = one_line(d.get("reason") or "unknown reason", 200)
    subject = _batch(post.batch) if post.batch else job
    text = f"{noun} failed: {job} ({reason}){_of_batch(post.batch)}."
    lead = f"{noun} `{job}` failed: *{reason}*."
    if d.get("cronjob"):
        lead += f" It was started by CronJob `{_name(d['cronjob'])}`."
    blocks = [_header(f"❌ {noun} failed: {subject}"), _section(_lead(mention, lead))]
    if d.get("message"):
        blocks.append(_section(code_block(d["message"], SECTION_TEXT_LIMIT)))
    blocks.append(
        _fields(
            [
                ("Batch", _batch(post.batch)),
                ("Failed at", _when(d.get("failed_at") or post.at.isoformat())),
                ("Reason", reason),
                (f"{noun} UID", _name(d.get("uid"))),
            ]
        )
    )
    return text, blocks


def _traceback(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    pod = f"{_name(d.get('namespace'))}/{_name(d.get('pod'))}"
    final = one_line(d.get("final_line") or "(final line not seen)", 300)
    subject = _batch(post.batch) if post.batch else pod
    text = f"Traceback in {pod}: {final}{_of_batch(post.batch)}."
    where = f"Pod `{pod}`"
    if d.get("container"):
        where += f", container `{_name(d['container'])}`"
    if d.get("job"):
        where += f", of Job `{_name(d['job'])}`"
    blocks = [
        _header(f"🐍 Traceback: {subject}"),
        _section(_lead(mention, f"{where} raised:")),
        _section(code_block(d.get("final_line") or "(final line not seen)", SECTION_TEXT_LIMIT)),
        _fields(
            [
                ("Batch", _batch(post.batch)),
                ("Logged at", _when(d.get("time") or post.at.isoformat())),
            ]
        ),
    ]
    return text, blocks


def _degraded(post: Post, d: Mapping[str, Any], mention: str | None) -> tuple[str, list[Block]]:
    source = d.get("source")
    since = _when(d.get("since") or post.at.isoformat())
    errors = d.get("errors")
    if source == "config":
        count = len(errors) if isinstance(errors, list) else 0
        text = (
            f"Monitor degraded: a config reload failed ({count} errors); "
            "the last good config keeps running."
        )
        body = "\n".join(str(error) for error in errors) if isinstance(errors, list) else ""
        blocks = [
            _header("⚠️ Monitor degraded: config reload failed"),
            _section(
                f"The config changed at *{since}* but is invalid; the last good config "
                "keeps running until it is fixed."
            ),
        ]
        if body:
            blocks.append(_section(code_block(body, SECTION_TEXT_LIMIT)))
        return text, blocks
    if source == "kubernetes-watermark":
        text = (
            f"Monitor degraded: the Kubernetes Job watch has not moved since {since} although "
            "the API answers; deadline decisions wait for it and alerts may be late."
        )
        blocks = [
            _header("⚠️ Monitor degraded: Kubernetes watch stalled"),
            _section(
                f"The Kubernetes API answers, but sla-monitor's view of the Jobs has not moved "
                f"since *{since}*. Deadlines after that are not judged until it catches up: "
                "alerts may be late, none are lost."
            ),
        ]
        return text, blocks
    if source == "state":
        text = (
            f"Monitor degraded: the saved state was unusable at {since} and was kept aside; "
            "sla-monitor started afresh."
        )
        blocks = [
            _header("⚠️ Monitor degraded: saved state unusable"),
            _section(
                f"sla-monitor could not use its saved state when it started at *{since}*. "
                "The bad copy is kept aside for inspection, and the daemon started as on a "
                "first start: deadlines and failures from before then are not alerted, and "
                "open incidents are forgotten; what happens from now on is alerted as usual."
            ),
        ]
        if d.get("detail"):
            blocks.append(_section(code_block(d["detail"], SECTION_TEXT_LIMIT)))
        return text, blocks
    name = _source_name(source)
    text = (
        f"Monitor degraded: cannot reach {name} since {since}; "
        "deadline decisions wait for it and alerts may be late."
    )
    blocks = [
        _header(f"⚠️ Monitor degraded: {name} unreachable"),
        _section(
            f"sla-monitor has not reached *{name}* since *{since}*. Deadlines are not judged "
            "while the cluster view lags behind: alerts may be late, none are lost."
        ),
    ]
    if d.get("detail"):
        blocks.append(_section(code_block(d["detail"], SECTION_TEXT_LIMIT)))
    return text, blocks


_LAYOUTS = {
    "missed_deadline": _missed_deadline,
    "stale": _stale,
    "at_risk": _at_risk,
    "overrun": _overrun,
    "job_failed": _job_failed,
    "traceback": _traceback,
    "monitor_degraded": _degraded,
}


def render_post(post: Post, settings: RenderSettings, mention: str | None = None) -> Message:
    """The alert as first posted, led by `mention` (the config's, passed through verbatim)."""
    layout = _LAYOUTS.get(post.kind)
    if layout is None:
        text = f"{escape(post.kind)}: {_batch(post.batch)}"
        blocks = [_section(text)]
    else:
        text, blocks = layout(post, post.details, mention)
    if post.kind in ("job_failed", "traceback"):
        details = post.details
        around = _instant(details.get("time")) or _instant(details.get("failed_at")) or post.at
        blocks += _where_to_look(_target(details, around), settings)
    blocks.append(_context(f"Alert key `{code_text(post.key)}`"))
    return _finish(_lead(mention, text), blocks, _metadata(post.kind, post.batch, post.key))


def _recovery_summary(resolve: Resolve) -> str:
    d = resolve.details
    if resolve.closed is not None:
        return f"closed: {escape(resolve.closed)}"
    zone = d.get("timezone")
    at = _when(d.get("completed_at") or d.get("back_at") or resolve.at.isoformat(), zone)
    if resolve.kind == "monitor_degraded":
        if d.get("source") == "config":
            return f"the config was reloaded successfully at {at}"
        if d.get("source") == "kubernetes-watermark":
            return f"the Kubernetes Job watch caught up again at {at}"
        return f"{_source_name(d.get('source'))} was reached again at {at}"
    if resolve.kind == "overrun":
        ended = _when(d.get("ended_at") or resolve.at.isoformat(), zone)
        outcome = {"succeeded": "succeeded", "failed": "failed"}.get(str(d.get("outcome")))
        took = f" after {_duration(d['duration_seconds'])}" if d.get("duration_seconds") else ""
        if outcome is None:
            return f"the run is gone (deleted while running, or no longer listed) at {ended}"
        return f"the run ended ({outcome}){took} at {ended}"
    if resolve.kind == "at_risk":
        return f"made it: *{_batch(resolve.batch)}* completed successfully at {at}, in time"
    summary = f"*{_batch(resolve.batch)}* completed successfully at {at}"
    if isinstance(d.get("late_seconds"), int):
        summary += f", *{_duration(d['late_seconds'])} late*"
    if d.get("deadline"):
        summary += f" (deadline {_when(d['deadline'], zone)})"
    count = d.get("missed_count")
    if isinstance(count, int) and count > 0 and resolve.kind == "missed_deadline":
        summary += f"; {count} deadline{'s' if count > 1 else ''} missed"
    if d.get("job"):
        summary += f" — Job `{_name(d.get('namespace'))}/{_name(d['job'])}`"
    return summary


def render_recovered(resolve: Resolve, settings: RenderSettings) -> Message:
    """The `recovered` reply posted in the alert's thread."""
    summary = _recovery_summary(resolve)
    text = f"Recovered: {summary.replace('*', '')}."
    blocks = [
        _section(f":white_check_mark: *Recovered*: {summary}."),
        _context(f"Resolves `{code_text(resolve.key)}`"),
    ]
    return _finish(text, blocks, _metadata("recovered", resolve.batch, resolve.recovered_key))


def render_resolved(post: Post, resolve: Resolve, settings: RenderSettings) -> Message:
    """The original alert, edited to show at a glance that it is resolved."""
    original = render_post(post, settings)  # no mention: an edit must not ping again
    summary = _recovery_summary(resolve)
    blocks = list(original.blocks)
    closed = resolve.closed is not None
    icon, word = ("⏹️", "Closed") if closed else ("✅", "Resolved")
    if blocks and blocks[0].get("type") == "header":
        title = blocks[0]["text"]["text"].split(" ", 1)[-1]
        blocks[0] = _header(f"{icon} {word} — {title}")
    mark = ":black_square_for_stop:" if closed else ":white_check_mark:"
    blocks.insert(1, _section(f"{mark} *{word}*: {summary}."))
    return _finish(f"[{word}] {original.text}", blocks, original.metadata)


def render_reminder(remind: Remind, settings: RenderSettings) -> Message:
    """The reminder replied in an open incident's thread (and sent to the channel)."""
    d = remind.details
    batch = _batch(remind.batch)
    since = _when(d.get("open_since"), d.get("timezone"))
    count = d.get("missed_count")
    what = (
        f"{count} deadline{'s' if isinstance(count, int) and count > 1 else ''} missed"
        if remind.kind == "missed_deadline"
        else "still stale"
    )
    summary = f"*{batch}* is still failing its SLA: {what}, open since *{since}*"
    text = f"Reminder: {summary.replace('*', '')}."
    blocks = [
        _section(f":bell: *Reminder*: {summary}."),
        _context(f"Reminder {escape(str(d.get('reminder', '')))} of `{code_text(remind.parent)}`"),
    ]
    return _finish(text, blocks, _metadata(remind.kind, remind.batch, remind.key))


def redirected(message: Message, intended: str, error: str) -> Message:
    """The message posted to the default channel because `intended` refused it."""
    note = _context(
        f":warning: Meant for {escape(intended)}, but Slack answered `{code_text(error)}`: "
        "invite the bot there (`/invite @bot`) or fix the channel in the config."
    )
    text = f"{message.text} (meant for {escape(intended)})"
    return _finish(text, [note, *message.blocks], message.metadata)


def render_fallback(kind: str, batch: str, key: str) -> Message:
    """The least a message can say, for an alert whose layout raised: it still goes out
    (plain text, no blocks), and the alerts behind it are not held up."""
    text = f"sla-monitor alert {escape(kind)}{_of_batch(batch)}: `{code_text(key)}`"
    return _finish(text, [], _metadata(kind, batch, key))
