"""A preview of every message kind, rendered by the real renderer into one HTML page.

`python -m monitor.notify.preview docs/messages.html` rewrites the page the docs link
to; each message also gets a Block Kit Builder link that shows it exactly as Slack would.
The HTML only approximates Slack's look (headers, bold, code, quotes, links).
"""

from __future__ import annotations

import html
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from monitor.facts import Action, Post, Resolve
from monitor.notify.render import (
    Message,
    RenderSettings,
    render_post,
    render_recovered,
    render_resolved,
)

_AT = datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
_BUILDER = "https://app.slack.com/block-kit-builder/#"


def examples() -> list[tuple[str, Action]]:
    """One realistic action per kind (and the resolution of a missed deadline)."""
    missed = Post(
        "missed_deadline",
        "recommend-daily",
        "recommend-daily@2026-11-27T09:00:00+09:00",
        _AT,
        {
            "deadline": "2026-11-27T09:00:00+09:00",
            "window_start": "2026-11-26T09:05:00+09:00",
            "window_end": "2026-11-27T09:05:00+09:00",
            "grace_seconds": 300,
            "timezone": "Asia/Tokyo",
            "last_success": "2026-11-26T08:41:12+09:00",
        },
        channel="#recommend",
        mention="<!subteam^S0123>",
    )
    job = {"namespace": "ml-batch", "job": "recommend-daily-29399", "cronjob": "recommend-daily"}
    return [
        ("missed_deadline", missed),
        (
            "stale",
            Post(
                "stale",
                "feature-refresh",
                "stale:feature-refresh@2026-11-27T00:31:00+00:00",
                _AT,
                {
                    "last_success": "2026-11-27T00:01:00+00:00",
                    "freshness_seconds": 1800,
                    "stale_since": "2026-11-27T00:31:00+00:00",
                },
            ),
        ),
        (
            "job_failed",
            Post(
                "job_failed",
                "recommend-daily",
                "job_failed:ml-batch/recommend-daily-29399@0d4f",
                _AT,
                {
                    **job,
                    "uid": "0d4f9c1e-7a3b-4c55-9e0a-2b1f6f1f2a10",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "failed_at": "2026-11-27T00:03:00+00:00",
                },
            ),
        ),
        (
            "traceback",
            Post(
                "traceback",
                "recommend-daily",
                "traceback:ml-batch/recommend-daily-29399-x7k2p/main@2026-11-27T00:02:30+00:00",
                _AT,
                {
                    **job,
                    "pod": "recommend-daily-29399-x7k2p",
                    "container": "main",
                    "first_line": "Traceback (most recent call last):",
                    "final_line": "KeyError: 'user_id'",
                    "time": "2026-11-27T00:02:30+00:00",
                },
            ),
        ),
        (
            "monitor_degraded",
            Post(
                "monitor_degraded",
                "",
                "degraded:kubernetes@2026-11-27T00:00:00+00:00",
                _AT,
                {
                    "source": "kubernetes",
                    "since": "2026-11-27T00:00:00+00:00",
                    "detail": "connection refused",
                },
            ),
        ),
        (
            "recovered",
            Resolve(
                missed.key,
                "missed_deadline",
                "recommend-daily",
                _AT + timedelta(minutes=47),
                {
                    "deadline": "2026-11-27T09:00:00+09:00",
                    "completed_at": "2026-11-27T09:47:00+09:00",
                    "late_seconds": 2820,
                    "namespace": "ml-batch",
                    "job": "recommend-daily-29400",
                },
            ),
        ),
    ]


def rendered(settings: RenderSettings) -> list[tuple[str, Message]]:
    """Each example as posted; a resolution shows its reply and the edited alert."""
    messages: list[tuple[str, Message]] = []
    alerts = {action.key: action for _, action in examples() if isinstance(action, Post)}
    for title, action in examples():
        if isinstance(action, Post):
            messages.append((title, render_post(action, settings)))
        else:
            messages.append((f"{title} (thread reply)", render_recovered(action, settings)))
            edited = render_resolved(alerts[action.key], action, settings)
            messages.append((f"{action.kind} after recovery (edited)", edited))
    return messages


def _mrkdwn(text: str) -> str:
    """Slack mrkdwn (already escaped for Slack, which is HTML's escaping too) as HTML."""
    text = re.sub(r"```(.*?)```", lambda m: f"<pre>{m.group(1)}</pre>", text, flags=re.S)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"&lt;(https?://[^|]+)\|([^&]+)&gt;", r'<a href="\1">\2</a>', text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', text)
    text = re.sub(r"<!subteam\^\w+>", "<span class=mention>@team</span>", text)
    return text.replace("\n", "<br>")


def _block(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f"<h3>{block['text']['text']}</h3>"
    if kind == "section" and "text" in block:
        return f"<p>{_mrkdwn(block['text']['text'])}</p>"
    if kind == "section":
        cells = "".join(f"<div>{_mrkdwn(f['text'])}</div>" for f in block["fields"])
        return f"<div class=fields>{cells}</div>"
    if kind == "context":
        parts = " · ".join(_mrkdwn(e.get("text", "")) for e in block["elements"])
        return f"<p class=context>{parts}</p>"
    return ""


def html_preview(settings: RenderSettings) -> str:
    cards = []
    for title, message in rendered(settings):
        builder = _BUILDER + quote(json.dumps({"blocks": message.blocks}), safe="")
        body = "".join(_block(block) for block in message.blocks)
        cards.append(
            f"<section><h2>{html.escape(title)}</h2>"
            f"<p class=fallback>text: {html.escape(message.text)}</p>"
            f"<div class=message>{body}</div>"
            f'<p><a href="{html.escape(builder)}">Open in Block Kit Builder</a></p></section>'
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#1d1c1d}"
        ".message{border-left:4px solid #ddd;padding:0 1em}pre{background:#f6f6f6;"
        "padding:.5em;white-space:pre-wrap}code{background:#f6f6f6;color:#c01343}"
        ".fields{display:grid;grid-template-columns:1fr 1fr;gap:.5em}"
        ".context{color:#616061;font-size:.85em}.fallback{color:#616061;font-size:.85em}"
        ".mention{background:#e8f5fa;color:#1264a3}"
    )
    return (
        "<!doctype html><meta charset=utf-8><title>sla-monitor Slack messages</title>"
        f"<style>{style}</style><h1>sla-monitor: every Slack message kind</h1>"
        "<p>Generated by <code>python -m monitor.notify.preview</code> from the real "
        "renderer (Cloud Logging configured: Logs Explorer links).</p>" + "".join(cards)
    )


def main(argv: list[str]) -> int:
    settings = RenderSettings(logs_project="my-gcp-project", logs_cluster="ml-cluster")
    page = html_preview(settings)
    if len(argv) > 1:
        with open(argv[1], "w", encoding="utf-8") as file:
            file.write(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
