"""The storm digest as a Slack message: one line per held alert, every key in metadata.

A digest stands for every alert it lists (each counts as delivered under its own key), so
its metadata carries the whole list (`alerts`: `{kind, batch, key}`), while the text shows
as many one-line summaries as Slack's block limits allow and says how many more there are.
"""

from __future__ import annotations

from typing import Any

from monitor.core.facts import Post
from monitor.notify.escape import MAX_BLOCKS, SECTION_TEXT_LIMIT, code_text, escape, one_line
from monitor.notify.render import EVENT_TYPE, Message

_ICONS = {"job_failed": "❌", "traceback": "🐍"}


def _summary(post: Post) -> str:
    d = post.details
    batch = escape(post.batch) if post.batch else "(no batch)"
    if post.kind == "job_failed":
        what = f"Job `{code_text(str(d.get('job') or '?'))}` failed: "
        what += one_line(str(d.get("reason") or "unknown reason"), 80)
    elif post.kind == "traceback":
        what = f"pod `{code_text(str(d.get('pod') or '?'))}`: "
        what += one_line(str(d.get("final_line") or "traceback"), 120)
    else:
        what = escape(post.kind)
    return f"{_ICONS.get(post.kind, '•')} *{batch}* {what}"


def render_digest(key: str, channel: str, alerts: list[Post]) -> Message:
    """One message for `alerts`, held for `channel` during a storm."""
    kinds = sorted({post.kind for post in alerts})
    title = f"{len(alerts)} more alerts in the last minute ({', '.join(kinds)})"
    text = f"Storm digest: {title}."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "🌩️ Storm digest"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{escape(title)}*, listed once here instead of one message each:",
            },
        },
    ]
    lines: list[str] = []
    shown = 0
    for post in alerts:
        if not post.details:  # kept by key only (a storm past the detailed ones)
            continue
        line = _summary(post)
        if sum(len(item) + 1 for item in lines) + len(line) > SECTION_TEXT_LIMIT - 100:
            if len(blocks) >= MAX_BLOCKS - 2:
                break
            blocks.append(_section("\n".join(lines)))
            lines = []
        lines.append(line)
        shown += 1
    if lines and len(blocks) < MAX_BLOCKS - 1:
        blocks.append(_section("\n".join(lines)))
    else:
        shown -= len(lines)
    if shown < len(alerts):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"…and {len(alerts) - shown} more: every alert key is in this "
                        "message's metadata.",
                    }
                ],
            }
        )
    payload = {
        "kind": "digest",
        "batch": "",
        "key": escape(key),
        "alerts": [
            {"kind": post.kind, "batch": escape(post.batch), "key": escape(post.key)}
            for post in alerts
        ],
    }
    return Message(text, blocks, {"event_type": EVENT_TYPE, "event_payload": payload})


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
