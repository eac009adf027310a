"""Make untrusted text safe for Slack and fit it into Slack's limits.

Slack parses `<...>` in message text as links and mentions (`<!channel>`, `<@U1>`,
`<#C1>`), and `&` starts an entity. Escaping exactly `&`, `<`, `>` makes any text from the
cluster or the logs inert. Cutting keeps messages within Slack's limits and says so
visibly, never in the middle of an entity or with a code block left open.
"""

from __future__ import annotations

import re

TRUNCATED = "… (truncated)"

# Slack's published limits (https://api.slack.com/reference/block-kit/blocks).
SECTION_TEXT_LIMIT = 3000
SECTION_FIELD_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
CONTEXT_TEXT_LIMIT = 2000
MAX_BLOCKS = 50
MESSAGE_TEXT_LIMIT = 40000

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def escape(text: object) -> str:
    """`&`, `<`, `>` as entities: the text can no longer form a link or a mention."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_text(text: object) -> str:
    """Escaped text for inside backticks: a backtick would end the code span early."""
    return escape(text).replace("`", "'")


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start plus a visible marker.

    Works on already escaped text: a cut never leaves half an entity (`&am`), and an
    unclosed ``` fence is closed again so the rest of the message keeps its formatting.
    """
    if len(text) <= limit:
        return text
    fence = "\n```"
    budget = max(0, limit - len(TRUNCATED) - len(fence))
    head = _PARTIAL_ENTITY.sub("", text[:budget])
    if head.count("```") % 2 == 1:
        return head + TRUNCATED + fence
    return head + TRUNCATED


def one_line(text: object, limit: int) -> str:
    """Escaped, on one line, cut to `limit`: for names and reasons inside a sentence."""
    flat = " ".join(str(text).split())
    return cut(escape(flat), limit)


def code_block(text: object, limit: int) -> str:
    """Escaped text in a ``` block (Slack shows it verbatim), cut to `limit` in total."""
    body = escape(text).replace("```", "'''")
    return cut(f"```{body}```", limit)
