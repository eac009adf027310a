"""A loopback fake of the Slack Web API, for `slack_sdk.WebClient` tests and the demo.

It serves `auth.test`, `chat.postMessage`, `chat.update` and `conversations.info` over real
HTTP on 127.0.0.1, accepting what the SDK sends (JSON, form or query arguments; a bearer
token or a `token` argument). Messages are checked like Slack checks them
(`invalid_blocks`, `msg_too_long`, `channel_not_found`, `not_in_channel`, `invalid_auth`)
and recorded with their arrival time. Faults are injected per request: 429 with
`Retry-After`, 5xx, connection resets, or "down for N seconds".

    with FakeSlackApi(token="xoxb-test", channels={"alerts": True}) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.url)
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from monitor.testing.slack_blocks import message_error

logger = logging.getLogger(__name__)


@dataclass
class Channel:
    id: str
    name: str
    is_member: bool = True
    is_archived: bool = False


@dataclass
class Message:
    """A message as Slack stores it; `edits` counts chat.update calls."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None
    arrived: float  # time.monotonic() at arrival
    edits: int = 0
    broadcast: bool = False  # reply_broadcast: a thread reply also shown in the channel

    @property
    def payload(self) -> dict[str, Any]:
        return (self.metadata or {}).get("event_payload") or {}


@dataclass
class Request:
    """One HTTP request as the fake answered it."""

    method: str
    status: int
    error: str | None
    arrived: float


@dataclass
class Faults:
    """Misbehaviour for the next requests; counts are decremented as they are used."""

    resets: int = 0
    server_errors: int = 0
    server_error_status: int = 503
    rate_limits: int = 0
    retry_after: int = 1
    down_until: float = 0.0
    down_with: str = "reset"  # or an HTTP status such as "503"
    errors: dict[str, list[str]] = field(default_factory=dict)  # method -> ok:false errors
    #: channel name -> (429s left for chat.postMessage there, Retry-After seconds)
    channel_limits: dict[str, list[int]] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlackApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake slack: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        method = url.path.rsplit("/", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        answer = self.fake._answer(method, url.query, raw, dict(self.headers.items()))
        if answer is None:
            self._reset()
            return
        status, body, headers = answer
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        self.send_response(status)
        content_type = "application/json" if isinstance(body, dict) else "text/html"
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close with RST and no response: what a dropped connection looks like to a client."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


def _arguments(query: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(parse_qsl(query))
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if raw and "json" in content_type:
        body = json.loads(raw)
        if isinstance(body, dict):
            arguments.update(body)
    elif raw:
        arguments.update(parse_qsl(raw.decode()))
        for name in ("blocks", "metadata", "attachments"):  # form bodies carry JSON strings
            if isinstance(arguments.get(name), str):
                with contextlib.suppress(ValueError):
                    arguments[name] = json.loads(arguments[name])
    return arguments


class FakeSlackApi:
    """The fake server, its channels, its recorded messages and its fault switches."""

    def __init__(
        self,
        token: str = "xoxb-test",
        channels: dict[str, bool] | None = None,
        pace: tuple[float, int] | None = None,
    ) -> None:
        """`pace` (posts per second, burst) makes chat.postMessage answer 429 like Slack
        when one channel is posted to faster than that."""
        self.token = token
        self._pace = pace
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, updated)
        self.faults = Faults()
        self.messages: list[Message] = []
        self.updates: list[Message] = []
        self.requests: list[Request] = []
        self._channels: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self._clock = int(time.time())
        self._sequence = 0
        for name, member in (channels or {"alerts": True}).items():
            self.add_channel(name, member=member)
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for `WebClient(base_url=...)` and `SLACK_API_URL`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- setup and faults --------------------------------------------------------------

    def add_channel(self, name: str, member: bool = True, archived: bool = False) -> str:
        with self._lock:
            channel = Channel(f"C{len(self._channels) + 1:08d}", name, member, archived)
            self._channels[channel.id] = channel
            return channel.id

    def channel_id(self, name: str) -> str:
        channel = self._find(name, ids_only=False)
        if channel is None:
            raise KeyError(name)
        return channel.id

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        with self._lock:
            self.faults.rate_limits, self.faults.retry_after = times, retry_after

    def server_error(self, times: int, status: int = 503) -> None:
        with self._lock:
            self.faults.server_errors, self.faults.server_error_status = times, status

    def reset_connections(self, times: int) -> None:
        with self._lock:
            self.faults.resets = times

    def down_for(self, seconds: float, mode: str = "reset") -> None:
        """Every request fails for `seconds`: `reset` drops connections, "503" etc. answer so."""
        with self._lock:
            self.faults.down_until, self.faults.down_with = time.monotonic() + seconds, mode

    def rate_limit_channel(self, channel: str, times: int, retry_after: int = 1) -> None:
        """The next `times` posts to `channel` (a name) answer 429 with `Retry-After`."""
        with self._lock:
            self.faults.channel_limits[channel.removeprefix("#")] = [times, retry_after]

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}`."""
        with self._lock:
            self.faults.errors.setdefault(method, []).extend([error] * times)

    # -- queries -----------------------------------------------------------------------

    def messages_in(self, channel: str) -> list[Message]:
        found = self._find(channel, ids_only=False)
        with self._lock:
            return [m for m in self.messages if found is not None and m.channel == found.id]

    def message(self, ts: str) -> Message:
        with self._lock:
            return next(m for m in self.messages if m.ts == ts)

    # -- the API -----------------------------------------------------------------------

    def _find(self, reference: str, ids_only: bool) -> Channel | None:
        with self._lock:
            if reference in self._channels:
                return self._channels[reference]
            if ids_only:
                return None
            name = reference.removeprefix("#")
            return next((c for c in self._channels.values() if c.name == name), None)

    def _fault(self, method: str) -> tuple[int, dict[str, Any] | str, dict[str, str]] | None:
        """An injected failure for this request; (0, ...) means a connection reset."""
        faults = self.faults
        if time.monotonic() < faults.down_until:
            if faults.down_with == "reset":
                return 0, "", {}
            return int(faults.down_with), "<html>Slack is down</html>", {}
        if faults.resets:
            faults.resets -= 1
            return 0, "", {}
        if faults.rate_limits:
            faults.rate_limits -= 1
            headers = {"Retry-After": str(faults.retry_after)}
            return 429, {"ok": False, "error": "ratelimited"}, headers
        if faults.server_errors:
            faults.server_errors -= 1
            return faults.server_error_status, "<html>Internal Server Error</html>", {}
        errors = faults.errors.get(method)
        if errors:
            return 200, {"ok": False, "error": errors.pop(0)}, {}
        return None

    def _channel_fault(
        self, method: str, arguments: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]] | None:
        """A 429 for a post to a rate-limited (or, with `pace`, too busy) channel."""
        if method != "chat.postMessage":
            return None
        channel = self._find(str(arguments.get("channel", "")), ids_only=False)
        if channel is None:
            return None
        limited = {"ok": False, "error": "ratelimited"}
        with self._lock:
            limit = self.faults.channel_limits.get(channel.name)
            if limit and limit[0] > 0:
                limit[0] -= 1
                return 429, limited, {"Retry-After": str(limit[1])}
            if self._pace is None:
                return None
            rate, burst = self._pace
            now = time.monotonic()
            tokens, updated = self._buckets.get(channel.name, (float(burst), now))
            tokens = min(float(burst), tokens + (now - updated) * rate)
            if tokens < 1.0:
                self._buckets[channel.name] = (tokens, now)
                return 429, limited, {"Retry-After": "1"}
            self._buckets[channel.name] = (tokens - 1.0, now)
        return None

    def _answer(
        self, method: str, query: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]] | None:
        with self._lock:
            fault = self._fault(method)
        if fault is None:
            try:
                arguments = _arguments(query, raw, headers)
                fault = self._channel_fault(method, arguments)
                if fault is None:
                    fault = (200, self._call(method, arguments, headers), {})
            except ValueError:
                fault = (200, {"ok": False, "error": "invalid_json"}, {})
        status, answered, _ = fault
        error = answered.get("error") if isinstance(answered, dict) else None
        with self._lock:
            self.requests.append(Request(method, status, error, time.monotonic()))
        return None if status == 0 else fault

    def _call(self, method: str, args: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = authorization.removeprefix("Bearer ") if authorization else args.get("token")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake",
                "user": "sla-monitor",
                "team_id": "T00000001",
                "user_id": "U00000001",
                "bot_id": "B00000001",
            }
        if method == "conversations.info":
            channel = self._find(str(args.get("channel", "")), ids_only=True)
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            info = {"is_channel": True, **channel.__dict__}
            return {"ok": True, "channel": info}
        if method == "chat.postMessage":
            return self._post(args)
        if method == "chat.update":
            return self._update(args)
        return {"ok": False, "error": "unknown_method"}

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._find(str(args.get("channel", "")), ids_only=False)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel.is_archived:
            return {"ok": False, "error": "is_archived"}
        if not channel.is_member:
            return {"ok": False, "error": "not_in_channel"}
        problem = message_error(args)
        if problem is not None:
            error, messages = problem
            return {"ok": False, "error": error, "response_metadata": {"messages": messages}}
        with self._lock:
            self._sequence += 1
            ts = f"{self._clock + self._sequence // 1_000_000}.{self._sequence % 1_000_000:06d}"
            thread_ts = args.get("thread_ts")
            message = Message(
                channel=channel.id,
                ts=ts,
                text=args.get("text"),
                blocks=args.get("blocks"),
                metadata=args.get("metadata"),
                thread_ts=str(thread_ts) if thread_ts else None,
                arrived=time.monotonic(),
                broadcast=bool(thread_ts) and args.get("reply_broadcast") in (True, "true", "1"),
            )
            self.messages.append(message)
        return {"ok": True, "channel": channel.id, "ts": ts, "message": {"text": message.text}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._find(str(args.get("channel", "")), ids_only=True)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        problem = message_error(args)
        if problem is not None:
            error, messages = problem
            return {"ok": False, "error": error, "response_metadata": {"messages": messages}}
        with self._lock:
            ts = str(args.get("ts", ""))
            target = next(
                (m for m in self.messages if m.channel == channel.id and m.ts == ts), None
            )
            if target is None:
                return {"ok": False, "error": "message_not_found"}
            target.text, target.blocks = args.get("text"), args.get("blocks")
            if "metadata" in args:
                target.metadata = args["metadata"]
            target.edits += 1
            self.updates.append(
                Message(
                    channel.id,
                    ts,
                    target.text,
                    target.blocks,
                    target.metadata,
                    target.thread_ts,
                    time.monotonic(),
                )
            )
        return {"ok": True, "channel": channel.id, "ts": ts, "text": target.text}
