"""The daemon's HTTP face: health, readiness, metrics, the status API and the status page.

The server never touches the engine. It asks a `StatusSource` for an immutable
`StatusSnapshot` (built under the engine's lock with `StatusSnapshot.from_engine`): either
the engine's thread publishes one after each step into a `LatestStatus` (requests never
wait), or `OnDemandStatus` builds one when asked, at most once a second (nothing is built
while nobody looks). A slow or hostile client holds only its own thread.

    status = LatestStatus()
    server = StatusServer(status, metrics, host="0.0.0.0", port=8080)
    server.start()                      # a daemon thread; port 0 picks a free port
    status.publish(StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=now))
    server.stop()

Routes (GET and HEAD only): `/healthz`, `/readyz` (503 until the sources synced; a standby
replica under leader election is ready), `/metrics`, `/api/status` and `/` (the HTML page).
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.core.engine import Engine
from monitor.core.schedule import iso
from monitor.web.metrics import Metrics
from monitor.web.page import render_status_page

logger = logging.getLogger(__name__)

#: The page draws no script, frame or remote asset; only its own inline style.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class StatusSnapshot:
    """What the HTTP endpoints show, copied out of the engine at one instant.

    `batches` are `Engine.status()` entries, `history` `Engine.history` entries (oldest
    first), `sources` name -> {"up": bool, "detail": str, ...}. `ready` is what `/readyz`
    answers; `leader` says whether this replica runs the pipeline.
    """

    batches: list[dict[str, Any]]
    history: list[dict[str, str]]
    sources: dict[str, dict[str, Any]]
    leader: bool
    ready: bool
    generated_at: datetime

    @classmethod
    def starting(cls, at: datetime) -> StatusSnapshot:
        """Before the daemon published anything: alive, not ready, not leading."""
        return cls([], [], {}, leader=False, ready=False, generated_at=at)

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        *,
        leader: bool,
        synced: bool,
        generated_at: datetime,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> StatusSnapshot:
        """Copy what the page shows; call it while holding the engine's lock.

        Readiness: a leader (or a replica without election) is ready once its sources have
        synced; a standby follower is ready at once, so a rollout never waits for a Lease.
        `sources` adds or overrides per-source fields next to the engine's own health view.
        """
        view: dict[str, dict[str, Any]] = {}
        for name, state in engine.sources.items():
            view[name] = {
                "up": state.reachable,
                "last_contact": iso(state.last_contact),
                "detail": state.detail,
                "degraded": state.degraded_key is not None,
            }
        for name, seen in engine.watermarks.items():
            view.setdefault(name, {"up": True, "detail": ""})["seen_up_to"] = iso(seen)
        for name, extra in (sources or {}).items():
            view.setdefault(name, {"up": True, "detail": ""}).update(extra)
        return cls(
            batches=engine.status(),
            history=[dict(entry) for entry in engine.history],
            sources=view,
            leader=leader,
            ready=synced or not leader,
            generated_at=generated_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The `/api/status` document (SPEC's shape, plus sources, history and time)."""
        return {
            "batches": self.batches,
            "leader": self.leader,
            "ready": self.ready,
            "sources": self.sources,
            "history": self.history,
            "generated_at": iso(self.generated_at),
        }


class StatusSource(Protocol):
    """Where the server reads its data; must be thread-safe and cheap."""

    def status_snapshot(self) -> StatusSnapshot: ...


class LatestStatus:
    """Holds the most recently published snapshot; publishing replaces it whole."""

    def __init__(self, initial: StatusSnapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = initial or StatusSnapshot.starting(datetime.now().astimezone())

    def publish(self, snapshot: StatusSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            return self._snapshot


class OnDemandStatus:
    """Builds a snapshot only when a request asks, reused for `max_age` seconds.

    For large configs: nothing is built while nobody looks, and a burst of requests
    shares one build. `build` typically takes the engine's lock and calls `from_engine`;
    concurrent readers wait for the one build in progress.
    """

    def __init__(
        self,
        build: Callable[[], StatusSnapshot],
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, StatusSnapshot] | None = None

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._max_age:
                self._cached = (now, self._build())
            return self._cached[1]


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, document: object) -> _Response:
    body = json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n"
    return _Response(status, "application/json; charset=utf-8", body)


def _text(status: int, text: str) -> _Response:
    return _Response(status, "text/plain; charset=utf-8", text.encode())


class _App:
    """Routes a path to a response; kept apart from the socket plumbing."""

    def __init__(self, status: StatusSource, metrics: Metrics) -> None:
        self.status = status
        self.metrics = metrics

    def respond(self, path: str, accept: str | None) -> _Response:
        route = urlsplit(path).path
        if route == "/healthz":
            return _text(HTTPStatus.OK, "ok\n")
        if route == "/metrics":
            body, content_type = self.metrics.exposition(accept)
            return _Response(HTTPStatus.OK, content_type, body)
        if route not in ("/readyz", "/api/status", "/"):
            return _text(HTTPStatus.NOT_FOUND, "not found\n")
        snapshot = self.status.status_snapshot()
        if route == "/readyz":
            code = HTTPStatus.OK if snapshot.ready else HTTPStatus.SERVICE_UNAVAILABLE
            document = {"ready": snapshot.ready, "leader": snapshot.leader}
            return _json(code, {**document, "sources": snapshot.sources})
        if route == "/api/status":
            return _json(HTTPStatus.OK, snapshot.to_json())
        page = render_status_page(snapshot).encode()
        return _Response(
            HTTPStatus.OK,
            "text/html; charset=utf-8",
            page,
            (("Content-Security-Policy", _PAGE_POLICY), ("X-Frame-Options", "DENY")),
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that stops sending loses its thread after this many seconds
    server_version = "sla-monitor"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _not_allowed(self) -> None:
        self._send(
            _Response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                b"method not allowed\n",
                (("Allow", "GET, HEAD"),),
            ),
            send_body=True,
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, send_body: bool) -> None:
        try:
            response = self.server.app.respond(self.path, self.headers.get("Accept"))
        except Exception:
            logger.exception("error serving %s", self.path)
            response = _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        self._send(response, send_body)

    def _send(self, response: _Response, send_body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)
        # A client that resets before accept() must not block the accept loop.
        self.socket.setblocking(False)


class StatusServer:
    """The HTTP server in a daemon thread. `start()` binds (port 0: any free port).

    The accept loop sleeps in `select` until a connection or `stop()` arrives (a wake-up
    socket pair), so an idle daemon pays no polling and stops at once.
    """

    def __init__(
        self, status: StatusSource, metrics: Metrics, host: str = "0.0.0.0", port: int = 8080
    ) -> None:
        self._app = _App(status, metrics)
        self._requested = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = _Server(self._requested, self._app)
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, self._wake[0]), name="http", daemon=True
        )
        self._thread.start()
        logger.info("serving HTTP on %s", self.url)

    @staticmethod
    def _serve(server: _Server, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if wake in ready:
                    return
                server.handle_request()  # accepts the pending connection; a thread serves it

    def stop(self) -> None:
        """Stop accepting, close the socket and wait for the accept loop to end."""
        if self._server is None or self._wake is None or self._thread is None:
            return
        self._wake[1].send(b"x")
        self._thread.join()
        self._server.server_close()
        for end in self._wake:
            end.close()
        self._server = self._thread = self._wake = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when 0 was asked for."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
