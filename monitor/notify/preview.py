"""A preview of every message kind, rendered by the real renderer into one HTML page.

`python -m monitor.notify.preview docs/messages.html` rewrites the page the docs link
to; each message also gets a Block Kit Builder link that shows it exactly as Slack would.
The HTML only approximates Slack's look (headers, bold, code, quotes, links).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import sys
from typing import Any
from urllib.parse import quote

from monitor.core.facts import Edit, Post, Remind
from monitor.notify.digest_message import render_digest
from monitor.notify.examples import examples, scripted_config, storm_failures
from monitor.notify.render import (
    Message,
    RenderSettings,
    render_post,
    render_recovered,
    render_reminder,
    render_resolved,
)
from monitor.notify.routing import ConfigRouter
from monitor.notify.storm import StormGate, digest_key

_BUILDER = "https://app.slack.com/block-kit-builder/#"

#: The previewed messages, in reading order (names from `monitor.notify.examples`).
_SHOWN = (
    "missed_deadline",
    "missed_deadline_never_succeeded",
    "stale",
    "at_risk",
    "overrun",
    "traceback",
    "job_failed",
    "monitor_degraded",
    "config_rejected",
    "incident_edited",
    "reminder_missed_deadline",
    "recovered_missed_deadline",
    "recovered_monitor_degraded",
    "closed_at_risk",
    "recovered_overrun",
)


def rendered(settings: RenderSettings) -> list[tuple[str, Message]]:
    """Each engine-made example as posted; a resolution shows its reply and the edited alert."""
    made = examples()
    router = ConfigRouter(scripted_config())
    alerts = {action.key: action for action in made.values() if isinstance(action, Post)}
    messages: list[tuple[str, Message]] = []
    for name in _SHOWN:
        action = made[name]
        title = name.replace("_", " ")
        if isinstance(action, Post):
            mention = router.address(action.route).mention
            if action.kind == "job_failed" and action.thread:
                title += " (a reply in the thread of its run's traceback)"
            messages.append((title, render_post(action, settings, mention)))
        elif isinstance(action, Edit):
            grown = dataclasses.replace(alerts[action.key], details=action.details)
            messages.append((f"{title} (the first alert, edited)", render_post(grown, settings)))
        elif isinstance(action, Remind):
            messages.append((f"{title} (thread reply)", render_reminder(action, settings)))
        else:
            messages.append((f"{title} (thread reply)", render_recovered(action, settings)))
            edited = render_resolved(alerts[action.key], action, settings)
            messages.append((f"{action.kind} after recovery (edited)", edited))
    storm = storm_failures()
    held = storm[StormGate().threshold :]
    channel = router.address(held[0].route).channel or ""
    key = digest_key(channel, held[0].at.timestamp())
    messages.append(
        (
            f"digest (a storm: {len(storm)} failures in a minute, the first "
            f"{len(storm) - len(held)} posted one by one)",
            render_digest(key, channel, held),
        )
    )
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
