"""How a rendered message leaves the process: Slack's Web API, or JSON lines on stdout.

`SlackTransport` is `slack_sdk.WebClient` with the SDK's own retry handlers for 429
(honouring `Retry-After`), 5xx and connection errors; what they give up on surfaces as a
`DeliveryError` that says whether it is worth retrying (`transient`), a channel problem
(`channel`: fall back to the default channel), an auth problem (`auth`), or a message
Slack will never accept (`message`). `StdoutTransport` is `--dry-run` and the no-token
mode: one JSON object per line (`{"kind", "batch", "key", "text", ...}`).
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message as Headers
from typing import IO, Any, Literal, Protocol, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from monitor.notify.render import Message

logger = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
ErrorClass = Literal["transient", "channel", "auth", "message"]

_CHANNEL_ERRORS = {"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived"}
_AUTH_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "not_allowed_token_type",
    "no_permission",
}
_TRANSIENT_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


class DeliveryError(Exception):
    """A post or edit that failed after the SDK's own retries."""

    def __init__(
        self, error_class: ErrorClass, code: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{error_class}: {code}")
        self.error_class: ErrorClass = error_class
        self.code = code
        self.retry_after = retry_after  # seconds Slack asked to wait (429 Retry-After)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to post: where, in which thread, and which alert it is."""

    channel: str
    message: Message
    kind: str
    batch: str
    key: str
    thread_ts: str | None = None
    broadcast: bool = False  # a thread reply also sent to the channel (reminders)


class Transport(Protocol):
    def check(self) -> str:
        """Who we post as (raises DeliveryError)."""
        ...

    def post(self, delivery: Delivery) -> tuple[str, str]:
        """Post; returns (channel ID, ts). Raises DeliveryError."""
        ...

    def update(self, channel_id: str, ts: str, message: Message) -> None:
        """Edit a posted message. Raises DeliveryError."""
        ...


def normalise_base_url(url: str) -> str:
    """`SLACK_API_URL` is accepted with or without its trailing slash."""
    return url.rstrip("/") + "/"


def classify(error: Exception) -> DeliveryError:
    """What an SDK failure means for delivery."""
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        data = error.response.data
        code = str(data.get("error", "unknown")) if isinstance(data, dict) else "unknown"
        if 300 <= status < 400:  # a redirect refused: never a reason to drop the alert
            return DeliveryError("transient", f"redirect_refused_http_{status}")
        if status == 429 or status >= 500 or code in _TRANSIENT_ERRORS:
            wait = _retry_after(error.response.headers) if status == 429 else None
            return DeliveryError("transient", f"http_{status}" if status != 200 else code, wait)
        if code in _CHANNEL_ERRORS:
            return DeliveryError("channel", code)
        if code in _AUTH_ERRORS:
            return DeliveryError("auth", code)
        return DeliveryError("message", code)
    return DeliveryError("transient", f"{type(error).__name__}: {error}")


def _retry_after(headers: Any) -> float | None:
    """The `Retry-After` seconds of a 429 (the SDK gives headers as a dict of lists)."""
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            text = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(str(text)))
            except ValueError:
                return None
    return None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib re-sends a request's headers — the `Authorization: Bearer` bot token included
    — to whatever host a redirect names; the token goes only to the configured API host."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Headers,
        newurl: str,
    ) -> urllib.request.Request | None:
        logger.error(
            "Slack API answered %s with a redirect to %s: refused, the bot token is only "
            "sent to the configured host (check SLACK_API_URL)",
            code,
            urllib.parse.urlsplit(newurl).netloc,
        )
        raise urllib.error.HTTPError(req.full_url, code, "redirect refused", headers, fp)


class _TokenSafeWebClient(WebClient):
    """`WebClient` whose requests never follow a redirect (see `_RefuseRedirects`).

    It replaces the one method that opens the connection; the SDK's retries, error
    handling and response parsing around it are unchanged.
    """

    def _perform_urllib_http_request_internal(
        self, url: str, req: urllib.request.Request
    ) -> dict[str, Any]:
        if not url.lower().startswith("http"):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        handlers: list[Any] = [urllib.request.HTTPSHandler(context=self.ssl), _RefuseRedirects]
        if isinstance(self.proxy, str):
            handlers.append(urllib.request.ProxyHandler({"http": self.proxy, "https": self.proxy}))
        opener = urllib.request.build_opener(*handlers)
        with opener.open(req, timeout=self.timeout) as resp:
            charset = resp.headers.get_content_charset() or "utf-8"
            body = resp.read().decode(charset)
            return {"status": resp.code, "headers": resp.headers, "body": body}


class SlackTransport:
    """The Slack Web API through `slack_sdk.WebClient` (redirects refused)."""

    def __init__(
        self, token: str, base_url: str = SLACK_API_URL, timeout: int = 10, retries: int = 3
    ) -> None:
        self.client = _TokenSafeWebClient(
            token=token,
            base_url=normalise_base_url(base_url),
            timeout=timeout,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=retries),
                ServerErrorRetryHandler(max_retry_count=retries),
                ConnectionErrorRetryHandler(max_retry_count=retries),
            ],
        )

    def check(self) -> str:
        try:
            answer = self.client.auth_test()
        except Exception as error:
            raise classify(error) from error
        return f"{answer.get('user')} in {answer.get('team')}"

    def post(self, delivery: Delivery) -> tuple[str, str]:
        message = delivery.message
        if not delivery.channel:  # neither the batch nor `slack.channel` names one
            raise DeliveryError("message", "no_channel_configured")
        try:
            answer = self.client.chat_postMessage(
                channel=delivery.channel,
                text=message.text,
                blocks=message.blocks or None,
                metadata=message.metadata,
                thread_ts=delivery.thread_ts,
                reply_broadcast=delivery.broadcast or None,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as error:
            raise classify(error) from error
        return str(answer["channel"]), str(answer["ts"])

    def update(self, channel_id: str, ts: str, message: Message) -> None:
        try:
            self.client.chat_update(
                channel=channel_id,
                ts=ts,
                text=message.text,
                blocks=message.blocks or None,
                metadata=message.metadata,
            )
        except Exception as error:
            raise classify(error) from error


class StdoutTransport:
    """Alerts as JSON lines on stdout; edits are not printed (the line is the alert)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def check(self) -> str:
        return "stdout (dry run)"

    def post(self, delivery: Delivery) -> tuple[str, str]:
        line = {
            "kind": delivery.kind,
            "batch": delivery.batch,
            "key": delivery.key,
            "text": delivery.message.text,
            "channel": delivery.channel,
            "thread_ts": delivery.thread_ts,
            "broadcast": delivery.broadcast,
            "blocks": delivery.message.blocks,
        }
        with self._lock:
            ts = f"{next(self._counter)}.000000"
            stream = self._stream or sys.stdout
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            stream.flush()
        return "stdout", ts

    def update(self, channel_id: str, ts: str, message: Message) -> None:
        logger.info("dry run: would edit message %s: %s", ts, message.text)


def read_token(token_file: str | None, environ: Mapping[str, str], token_env: str) -> str:
    """The bot token: from `token_file` (a mounted Secret) if given and readable, else from
    the environment variable `token_env`; "" when neither has one."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as error:
            logger.error(
                "cannot read slack.token_file %s (%s); trying $%s", token_file, error, token_env
            )
        else:
            if token:
                return token
            logger.error("slack.token_file %s is empty; trying $%s", token_file, token_env)
    return environ.get(token_env, "").strip()


def transport_from_env(
    environ: Mapping[str, str],
    token_env: str = "SLACK_BOT_TOKEN",
    dry_run: bool = False,
    token_file: str | None = None,
) -> SlackTransport | StdoutTransport:
    """Slack when a token is set (at `SLACK_API_URL` if given), else stdout."""
    token = read_token(token_file, environ, token_env)
    if dry_run or not token:
        if not dry_run:
            logger.warning("no Slack token in $%s: alerts go to stdout as JSON lines", token_env)
        return StdoutTransport()
    return SlackTransport(token, environ.get("SLACK_API_URL") or SLACK_API_URL)
