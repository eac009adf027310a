"""The status page: one server-rendered HTML document a person reads at a glance.

No JavaScript, no build step, no external asset: inline CSS and a refresh every 10 s.
Batches are listed worst first (missed, stale, failing, due soon, ok), each with a
coloured badge that also says its state in words. Every string that comes from config or
the cluster is HTML-escaped. Times are ISO-8601 with offset, in the zone of the snapshot's
`generated_at` (next deadlines in their batch's zone, as in alert keys), followed by how far
they are from `generated_at`, so a given snapshot always renders the same page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.web.server import StatusSnapshot

#: state -> (label, badge colour), worst first; the order sorts the batch table.
STATES: dict[str, tuple[str, str]] = {
    "missed": ("missed", "#cf222e"),
    "stale": ("stale", "#bc4c00"),
    "failing": ("failing", "#8250df"),
    "due": ("due soon", "#9a6700"),
    "ok": ("ok", "#1a7f37"),
}
HISTORY_SHOWN = 20
_UNKNOWN_COLOUR = "#57606a"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:1200px;padding:16px 24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#57606a;margin:0 0 8px}
table{border-collapse:collapse;width:100%}.scroll{overflow-x:auto}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:600;
white-space:nowrap}
.rel{color:#57606a;font-size:12px;display:block}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.none{color:#8c959f}ul{margin:0;padding-left:16px}
.summary .badge{margin-right:6px}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}
th{background:#161b22}th,td{border-color:#30363d}.meta,.rel{color:#8d96a0}}
"""


def render_status_page(snapshot: StatusSnapshot) -> str:
    """The whole page for one snapshot; deterministic for a given snapshot."""
    now = snapshot.generated_at
    batches = sorted(snapshot.batches, key=lambda batch: _severity(batch.get("state")))
    counts = _count_states(batches)
    title = ", ".join(f"{n} {STATES[s][0]}" for s, n in counts if s != "ok") or "all ok"
    summary = " ".join(_badge(state, f"{n} {_label(state)}") for state, n in counts)
    role = "leader" if snapshot.leader else "follower (standby)"
    readiness = "ready" if snapshot.ready else "not ready: sources still syncing"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="10">',
        f"<title>sla-monitor: {escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>sla-monitor</h1>",
        f'<p class="meta">This replica: <strong>{role}</strong>, {readiness}. '
        f"Generated {_time(now, now, inline=True)}.</p>",
        f'<p class="summary">{summary or "No batch is configured."}</p>',
        "<h2>Batches</h2>",
        _batch_table(batches, now),
        "<h2>Sources</h2>",
        _source_table(snapshot.sources, now),
        f"<h2>Recent alerts (last {HISTORY_SHOWN})</h2>",
        _history_table(snapshot.history, now),
        '<p class="meta">Machine-readable: <a href="api/status">api/status</a> · '
        '<a href="metrics">metrics</a> · <a href="readyz">readyz</a></p>',
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _severity(state: object) -> int:
    order = list(STATES)
    return order.index(state) if isinstance(state, str) and state in STATES else len(order)


def _count_states(batches: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for batch in batches:
        state = str(batch.get("state"))
        counts[state] = counts.get(state, 0) + 1
    return sorted(counts.items(), key=lambda item: _severity(item[0]))


def _label(state: str) -> str:
    return STATES[state][0] if state in STATES else state


def _badge(state: str, text: str) -> str:
    colour = STATES[state][1] if state in STATES else _UNKNOWN_COLOUR
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def _table(headers: Iterable[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="none">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _batch_table(batches: list[dict[str, Any]], now: datetime) -> str:
    rows = []
    for batch in batches:
        state = str(batch.get("state"))
        alerts = batch.get("open_alerts") or []
        rows.append(
            [
                f"<strong>{escape(str(batch.get('name')))}</strong>",
                _badge(state, _label(state)),
                f"{escape(str(batch.get('schedule', '')))}: "
                f"<code>{escape(str(batch.get('rule', '')))}</code>",
                _time(batch.get("last_success"), now),
                _time(batch.get("next_deadline"), now, local=False),
                _time(batch.get("last_failure"), now),
                "<ul>"
                + "".join(f"<li><code>{escape(str(k))}</code></li>" for k in alerts)
                + "</ul>"
                if alerts
                else '<span class="none">none</span>',
            ]
        )
    headers = ["Batch", "State", "Rule", "Last success", "Next deadline", "Last failure"]
    return _table([*headers, "Open alerts"], rows, "No batch is configured.")


def _source_table(sources: Mapping[str, Mapping[str, Any]], now: datetime) -> str:
    rows = []
    for name, source in sorted(sources.items()):
        up = bool(source.get("up"))
        rows.append(
            [
                f"<strong>{escape(name)}</strong>",
                _badge("ok", "up") if up else _badge("missed", "down"),
                _time(source.get("last_contact"), now),
                _time(source.get("seen_up_to"), now),
                escape(str(source.get("detail") or "")),
            ]
        )
    headers = ["Source", "Status", "Last contact", "Seen up to", "Detail"]
    return _table(headers, rows, "No source has reported yet.")


def _history_table(history: list[dict[str, str]], now: datetime) -> str:
    rows = [
        [
            _time(entry.get("at"), now),
            escape(str(entry.get("kind", ""))),
            escape(str(entry.get("batch") or "—")),
            f"<code>{escape(str(entry.get('key', '')))}</code>",
        ]
        for entry in sorted(history, key=_instant_of, reverse=True)[:HISTORY_SHOWN]
    ]
    return _table(["When", "Kind", "Batch", "Key"], rows, "No alert yet.")


def _instant_of(entry: Mapping[str, Any]) -> datetime:
    """Sort key for history: the alert's own instant (engine order is emission order)."""
    return _parse(str(entry.get("at"))) or _EPOCH


def _time(value: object, now: datetime, local: bool = True, inline: bool = False) -> str:
    """ISO text with its offset, then 'in 25m' / '3h 5m ago' relative to `now`.

    With `local`, the instant is shown in `now`'s offset, so one page reads in one zone;
    next deadlines keep their batch's own zone, the one their alert keys use.
    """
    if value is None:
        return '<span class="none">—</span>'
    instant = value if isinstance(value, datetime) else _parse(str(value))
    if instant is None:
        return f"<time>{escape(str(value))}</time>"
    shown = instant.astimezone(now.tzinfo) if local else instant
    text = f"<time>{escape(shown.isoformat())}</time>"
    return text if inline else f'{text}<span class="rel">{_relative(instant - now)}</span>'


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
