"""The status page: one server-rendered HTML document a person reads at a glance.

No JavaScript, no build step, no external asset: inline CSS and a refresh every 10 s, so it
works in any browser and under a Content-Security-Policy that allows no script. Batches are
listed worst first (open incidents: missed, stale; then failing, at risk, running, due soon,
ok; silenced last), each with a coloured badge that also says its state in words; a state
this page does not know is shown by its name in a neutral colour, just before ok.

Per batch: its schedule in words ("At 09:00, every day (Asia/Tokyo)", by cron-descriptor;
the cron text itself when the library cannot read it), a strip of its last 20 runs (oldest
on the left, newest on the right; each cell coloured and labelled on time, late, failed,
running, or succeeded for a freshness batch, with a tooltip), its on-time rate, p90 duration,
last success, next deadline, last failure and open alerts.

Every instant of a batch is shown in that batch's own zone, to the second, followed by how
far it is from the snapshot's `generated_at`, so a given snapshot always renders the same
page; the page's own instants (generation, sources, alerts of no batch) are in the zone of
`generated_at`. Every string that comes from config or the cluster is HTML-escaped, in text
and in attributes alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from html import escape
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options

from monitor.core.schedule import format_duration

if TYPE_CHECKING:
    from monitor.web.server import StatusSnapshot

#: state -> (label, badge colour), in the order that sorts the batch table.
STATES: dict[str, tuple[str, str]] = {
    "missed": ("missed", "#cf222e"),
    "stale": ("stale", "#bc4c00"),
    "failing": ("failing", "#8250df"),
    "at_risk": ("at risk", "#bf3989"),
    "running": ("running", "#0969da"),
    "due": ("due soon", "#9a6700"),
    "ok": ("ok", "#1a7f37"),
    "silenced": ("silenced", "#6e7781"),
}
#: A run's kind on the strip -> its colour; the kind is also its accessible label.
RUN_KINDS: dict[str, str] = {
    "on time": "#2da44e",
    "late": "#d4a72c",
    "failed": "#cf222e",
    "running": "#54aeff",
    "succeeded": "#8ddb9f",
}
HISTORY_SHOWN = 20
RUNS_SHOWN = 20
REFRESH_SECONDS = 10
_UNKNOWN_COLOUR = "#57606a"
#: Unknown states sort just before ok: a state added later is never hidden among the oks.
_UNKNOWN_RANK = list(STATES).index("ok") - 0.5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CRON_OPTIONS = Options(
    casing_type=CasingTypeEnum.Sentence,
    verbose=True,
    use_24hour_time_format=True,
    locale_code="en_US",
)

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:1200px;padding:16px 24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#57606a;margin:0 0 8px}
table{border-collapse:collapse;width:100%}.scroll{overflow-x:auto}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa;font-weight:600;white-space:nowrap}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:600;
white-space:nowrap}
.sub,.rel{color:#57606a;font-size:12px;display:block}
time{white-space:nowrap;font-size:13px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.none{color:#8c959f}ul{margin:0;padding-left:16px}
tr.open td{border-bottom:none}tr.alerts td{padding-top:0;font-size:13px}
.keys{display:inline;padding:0}.keys li{display:inline;margin-right:12px}
.summary .badge{margin-right:6px}
.num{text-align:right;white-space:nowrap}.name{white-space:nowrap}
tr.silenced td{background:repeating-linear-gradient(135deg,transparent 0 8px,#8c959f14 8px 16px)}
tr.silenced .name::after{content:" (silenced)";font-weight:400;color:#57606a}
.runs{display:flex;justify-content:flex-end;gap:2px;margin:0;padding:0;list-style:none;
width:198px}
.run{width:8px;height:20px;border-radius:2px;flex:none}
.legend .run{display:inline-block;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);
white-space:nowrap}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}
th{background:#161b22}th,td{border-color:#30363d}.meta,.rel,.sub{color:#8d96a0}}
"""


def render_status_page(snapshot: StatusSnapshot) -> str:
    """The whole page for one snapshot; deterministic for a given snapshot."""
    now = snapshot.generated_at
    batches = sorted(snapshot.batches, key=lambda batch: _rank(batch.get("state")))
    counts = _count_states(batches)
    title = ", ".join(f"{n} {_label(s)}" for s, n in counts if s != "ok") or "all ok"
    summary = " ".join(_badge(state, f"{n} {_label(state)}") for state, n in counts)
    role = "leader" if snapshot.leader else "follower (standby)"
    readiness = "ready" if snapshot.ready else "not ready: sources still syncing"
    zones = {str(b.get("name")): _zone(b.get("timezone")) for b in batches}
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>sla-monitor: {escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>sla-monitor</h1>",
        f'<p class="meta">This replica: <strong>{role}</strong>, {readiness}. '
        f"Generated {_exact(now.replace(microsecond=0))}; "
        f"refreshes every {REFRESH_SECONDS} s.</p>",
        f'<p class="summary">{summary or "No batch is configured."}</p>',
        "<h2>Batches</h2>",
        _batch_table(batches, now),
        _legend() if batches else "",
        "<h2>Sources</h2>",
        _source_table(snapshot.sources, now),
        f"<h2>Recent alerts (last {HISTORY_SHOWN})</h2>",
        _history_table(snapshot.history, zones, now),
        '<p class="meta">Machine-readable: <a href="api/status">api/status</a> · '
        '<a href="metrics">metrics</a> · <a href="readyz">readyz</a></p>',
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _rank(state: object) -> float:
    order = list(STATES)
    return order.index(state) if isinstance(state, str) and state in STATES else _UNKNOWN_RANK


def _count_states(batches: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for batch in batches:
        state = str(batch.get("state"))
        counts[state] = counts.get(state, 0) + 1
    return sorted(counts.items(), key=lambda item: _rank(item[0]))


def _label(state: str) -> str:
    return STATES[state][0] if state in STATES else state


def _badge(state: str, text: str) -> str:
    colour = STATES[state][1] if state in STATES else _UNKNOWN_COLOUR
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def _table(headers: Iterable[str], rows: list[str], empty: str) -> str:
    """`rows` are whole `<tr>` elements; headers are plain text."""
    if not rows:
        return f'<p class="none">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _row(kind: str, cells: Iterable[str]) -> str:
    return f'<tr class="{kind}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


_BATCH_HEADERS = [
    *("Batch", "State", f"Last {RUNS_SHOWN} runs", "On time", "p90"),
    *("Last success", "Next deadline", "Last failure"),
]


def _batch_table(batches: list[dict[str, Any]], now: datetime) -> str:
    """One row per batch; its open alerts (incident keys) in a full-width row beneath."""
    rows = []
    for batch in batches:
        state = str(batch.get("state"))
        zone = _zone(batch.get("timezone"))
        alerts = [escape(str(key)) for key in batch.get("open_alerts") or []]
        runs = [run for run in batch.get("runs") or [] if isinstance(run, Mapping)]
        kind = "batch" + (" silenced" if state == "silenced" else "") + (" open" if alerts else "")
        cells = [
            f'<strong class="name">{escape(str(batch.get("name")))}</strong>' + _schedule(batch),
            _badge(state, _label(state)),
            _strip(runs[:RUNS_SHOWN], zone, now),
            f'<span class="num">{_percent(batch.get("on_time_rate"))}</span>',
            f'<span class="num">{_seconds(batch.get("duration_p90_seconds"))}</span>',
            _time(batch.get("last_success"), now, zone),
            _time(batch.get("next_deadline"), now, zone),
            _time(batch.get("last_failure"), now, zone),
        ]
        rows.append(_row(kind, cells))
        if alerts:
            keys = " ".join(f"<li><code>{key}</code></li>" for key in alerts)
            rows.append(
                f'<tr class="alerts"><td></td><td colspan="{len(cells) - 1}">'
                f'Open alerts: <ul class="keys">{keys}</ul></td></tr>'
            )
    return _table(_BATCH_HEADERS, rows, "No batch is configured.")


def _schedule(batch: Mapping[str, Any]) -> str:
    """The batch's rule in words under its name: a cron described (the cron itself in the
    tooltip, or shown when it cannot be described), or its freshness bound."""
    rule = str(batch.get("rule") or "")
    if batch.get("schedule") != "deadline":
        return f'<span class="sub">{escape(rule[:1].upper() + rule[1:])}</span>'
    words = describe_cron(rule)
    zone = batch.get("timezone")
    where = f" ({escape(str(zone))})" if zone else ""
    if words is None:
        return f'<span class="sub"><code>{escape(rule)}</code>{where}</span>'
    return f'<span class="sub" title="cron: {escape(rule)}">{escape(words)}{where}</span>'


@functools.lru_cache(maxsize=4096)
def describe_cron(expression: str) -> str | None:
    """A cron in words ("At 09:00, every day"), or None when cron-descriptor cannot read it.

    Six fields are seconds first (our Cron type); a seventh, every year, is added so the
    library never takes the sixth for a year. Cached: describing costs about 0.5 ms.
    """
    fields = expression.split()
    if len(fields) == 6:
        fields.append("*")
    try:
        text = ExpressionDescriptor(" ".join(fields), _CRON_OPTIONS).get_description()
    except Exception:  # the library raises several types for what it cannot describe
        return None
    return str(text) or None


def run_kind(run: Mapping[str, Any]) -> str:
    """What a run's cell says: on time, late, failed, running, or succeeded (not judged)."""
    outcome = run.get("outcome")
    if outcome == "succeeded":
        on_time = run.get("on_time")
        return "succeeded" if on_time is None else "on time" if on_time else "late"
    return "failed" if outcome == "failed" else "running"


def _strip(runs: list[Mapping[str, Any]], zone: tzinfo | None, now: datetime) -> str:
    """The runs as small cells, oldest on the left and newest on the right (`runs` is
    newest first), right-aligned so the newest runs of all batches line up."""
    if not runs:
        return '<span class="none">no run seen</span>'
    cells = []
    for run in reversed(runs):
        kind = run_kind(run)
        label = f"{kind}: {_run_summary(run, zone)}"
        cells.append(
            f'<li class="run" data-run="{escape(kind)}" title="{escape(label)}" '
            f'style="background:{RUN_KINDS[kind]}"><span class="sr">{escape(label)}</span></li>'
        )
    described = f"last {len(runs)} runs, oldest first"
    return f'<ol class="runs" aria-label="{described}">{"".join(cells)}</ol>'


def _run_summary(run: Mapping[str, Any], zone: tzinfo | None) -> str:
    """`NAME (REASON), started …, finished …, took 35m`: what the cell's tooltip says."""
    started, finished = _instant(run.get("started"), zone), _instant(run.get("finished"), zone)
    head = str(run.get("name") or "?")
    if run.get("reason"):
        head += f" ({run.get('reason')})"
    facts = [f"started {_stamp(started)}" if started else "start unknown"]
    if finished is not None:
        facts.append(f"finished {_stamp(finished)}")
    seconds = run.get("duration_seconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        facts.append(f"took {format_duration(timedelta(seconds=seconds))}")
    return ", ".join([head, *facts])


def _legend() -> str:
    keys = "".join(
        f'<span class="run" style="background:{colour}"></span>{escape(kind)}'
        for kind, colour in RUN_KINDS.items()
    )
    return (
        f'<p class="meta legend">Runs, oldest left, newest right:{keys} (a freshness batch). '
        "A run is on time when it finished by the first deadline at or after its start, plus "
        "grace. On time: the share of the last 30 deadlines met. p90: of the last 20 "
        "successful runs' durations.</p>"
    )


def _percent(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return '<span class="none">—</span>'
    return f"{value * 100:.0f}%"


def _seconds(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return '<span class="none">—</span>'
    return escape(format_duration(timedelta(seconds=value)))


def _source_table(sources: Mapping[str, Mapping[str, Any]], now: datetime) -> str:
    rows = []
    for name, source in sorted(sources.items()):
        up = bool(source.get("up"))
        cells = [
            f"<strong>{escape(name)}</strong>",
            _badge("ok", "up") if up else _badge("missed", "down"),
            _time(source.get("last_contact"), now, now.tzinfo),
            _time(source.get("seen_up_to"), now, now.tzinfo),
            escape(str(source.get("detail") or "")),
        ]
        rows.append(_row("source", cells))
    headers = ["Source", "Status", "Last contact", "Seen up to", "Detail"]
    return _table(headers, rows, "No source has reported yet.")


def _history_table(
    history: list[dict[str, str]], zones: Mapping[str, tzinfo | None], now: datetime
) -> str:
    rows = []
    for entry in sorted(history, key=_instant_of, reverse=True)[:HISTORY_SHOWN]:
        batch = entry.get("batch") or ""
        zone = zones.get(batch) or now.tzinfo
        cells = [
            _time(entry.get("at"), now, zone),
            escape(str(entry.get("kind", ""))),
            escape(batch or "—"),
            f"<code>{escape(str(entry.get('key', '')))}</code>",
        ]
        rows.append(_row("alert", cells))
    return _table(["When", "Kind", "Batch", "Key"], rows, "No alert yet.")


def _instant_of(entry: Mapping[str, Any]) -> datetime:
    """Sort key for history: the alert's own instant (engine order is emission order)."""
    return _parse(str(entry.get("at"))) or _EPOCH


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _instant(value: object, zone: tzinfo | None) -> datetime | None:
    """An ISO text (or datetime) as an instant in `zone` (None: its own offset), to the
    second."""
    instant = value if isinstance(value, datetime) else _parse(str(value))
    if instant is None or instant.tzinfo is None:
        return None
    if zone is not None:
        instant = instant.astimezone(zone)
    return instant.replace(microsecond=0)


def _stamp(instant: datetime) -> str:
    """`2026-11-26 09:00:00 JST`: date, time to the second, the zone's abbreviation (or
    its offset, where the zone has none)."""
    return f"{instant:%Y-%m-%d %H:%M:%S} {instant.tzname() or instant.isoformat()[19:]}"


def _time(value: object, now: datetime, zone: tzinfo | None = None) -> str:
    """The instant in `zone` to the second, then 'in 25m' / '3h 5m ago' relative to `now`;
    the exact ISO text with its offset in the `datetime` attribute and the tooltip."""
    if value is None:
        return '<span class="none">—</span>'
    instant = _instant(value, zone)
    if instant is None:
        return f"<time>{escape(str(value))}</time>"
    return f'{_exact(instant)}<span class="rel">{_relative(instant - now)}</span>'


def _exact(instant: datetime) -> str:
    exact = instant.isoformat()
    return f'<time datetime="{exact}" title="{exact}">{escape(_stamp(instant))}</time>'


def _parse(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _relative(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds == 0:
        return "now"
    if seconds < 60:
        return f"in {seconds}s" if delta.total_seconds() > 0 else f"{seconds}s ago"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    units = [(days, "d"), (hours, "h"), (minutes, "m")]
    text = " ".join(f"{n}{unit}" for n, unit in units if n)
    text = " ".join(text.split()[:2])  # "2d 3h", not "2d 3h 4m"
    return f"in {text}" if delta.total_seconds() > 0 else f"{text} ago"
