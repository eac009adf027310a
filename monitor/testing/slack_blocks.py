"""Block Kit limits, checked the way Slack checks them before accepting a message.

Slack answers `invalid_blocks` (with JSON-pointer messages) when a block breaks a limit,
`msg_too_long` for oversize text and `invalid_metadata_format` for malformed metadata.
The fake Slack API uses these checks so that a renderer which would be refused by Slack
is refused in tests too. Only the block types the product posts are modelled in depth.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40000
_TEXT_TYPES = ("plain_text", "mrkdwn")
_KNOWN_BLOCKS = {
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "markdown",
}


def _text_object(value: Any, pointer: str, limit: int, types: tuple[str, ...]) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in types:
        return [f"[ERROR] must be a text object of type {'|'.join(types)} [json-pointer:{pointer}]"]
    text = value.get("text")
    if not isinstance(text, str) or not text:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _section(block: dict[str, Any], pointer: str) -> list[str]:
    errors: list[str] = []
    if "text" not in block and "fields" not in block:
        errors.append(f"[ERROR] must provide either text or fields [json-pointer:{pointer}]")
    if "text" in block:
        errors += _text_object(block["text"], f"{pointer}/text", 3000, _TEXT_TYPES)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not 0 < len(fields) <= 10:
            errors.append(f"[ERROR] must have 1 to 10 items [json-pointer:{pointer}/fields]")
        else:
            for index, item in enumerate(fields):
                errors += _text_object(item, f"{pointer}/fields/{index}", 2000, _TEXT_TYPES)
    return errors


def _context(block: dict[str, Any], pointer: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= 10:
        return [f"[ERROR] must have 1 to 10 items [json-pointer:{pointer}/elements]"]
    errors: list[str] = []
    for index, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") == "image":
            continue
        errors += _text_object(element, f"{pointer}/elements/{index}", 3000, _TEXT_TYPES)
    return errors


def _actions(block: dict[str, Any], pointer: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= 25:
        return [f"[ERROR] must have 1 to 25 items [json-pointer:{pointer}/elements]"]
    errors: list[str] = []
    for index, element in enumerate(elements):
        where = f"{pointer}/elements/{index}"
        if isinstance(element, dict) and element.get("type") == "button":
            errors += _text_object(element.get("text"), f"{where}/text", 75, ("plain_text",))
            url = element.get("url")
            if url is not None and (not isinstance(url, str) or len(url) > 3000):
                errors.append(
                    f"[ERROR] must be less than 3001 characters [json-pointer:{where}/url]"
                )
    return errors


def _block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in _KNOWN_BLOCKS:
        return [f"[ERROR] unsupported type [json-pointer:{pointer}/type]"]
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > 255):
        return [f"[ERROR] must be less than 256 characters [json-pointer:{pointer}/block_id]"]
    kind = block["type"]
    if kind == "header":
        return _text_object(block.get("text"), f"{pointer}/text", 150, ("plain_text",))
    if kind == "section":
        return _section(block, pointer)
    if kind == "context":
        return _context(block, pointer)
    if kind == "actions":
        return _actions(block, pointer)
    if kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 12000:
            return [f"[ERROR] must be 1 to 12000 characters [json-pointer:{pointer}/text]"]
    return []


def block_errors(blocks: Any) -> list[str]:
    """Slack's `response_metadata.messages` for these blocks; empty when Slack accepts them."""
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    if len(blocks) > MAX_BLOCKS:
        return [f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
    errors: list[str] = []
    for index, block in enumerate(blocks):
        errors += _block(block, f"/blocks/{index}")
    return errors


def message_error(arguments: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The error Slack gives a chat.postMessage/chat.update body, or None if it is fine."""
    text, blocks = arguments.get("text"), arguments.get("blocks")
    if not text and not blocks:
        return "no_text", []
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        return "msg_too_long", []
    if blocks is not None:
        errors = block_errors(blocks)
        if errors:
            return "invalid_blocks", errors
    metadata = arguments.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        return "invalid_metadata_format", []
    return None
