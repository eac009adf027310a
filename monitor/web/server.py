"""The daemon's HTTP face: health, readiness, metrics, the status API and the status page.

The server never touches the engine. It asks a `StatusSource` for an immutable
`StatusSnapshot` (built under the engine's lock with `StatusSnapshot.from_engine`): either
the engine's thread publishes one after each step into a `LatestStatus` (requests never
wait), or `OnDemandStatus` builds one when asked, at most once a second (nothing is built
while nobody looks). Those live in `monitor.web.snapshot`; the sockets, threads and
`Limits` in `monitor.web.connections`. This module routes requests and renders responses,
and `StatusServer` puts the parts together; everything a caller needs is importable here.

    status = LatestStatus()
    server = StatusServer(status, metrics, host="0.0.0.0", port=8080)
    server.start()                      # two daemon threads and a small pool; port 0: any port
    status.publish(StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=now))
    server.stop()

Routes (GET and HEAD only): `/healthz`, `/readyz` (503 until the sources synced; a standby
replica under leader election is ready), `/metrics`, `/api/status` and `/` (the HTML page).

No client ever owns a thread: the loop thread answers what needs no data (`/healthz`, 404,
405) itself, and only a request for the snapshot or the metrics reaches one of a fixed few
worker threads, to be rendered. Rendered responses are reused while the source hands out
the same snapshot, so any number of clients polling `/api/status` or `/` cost one render
per snapshot.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import weakref
from collections.abc import Callable
from http import HTTPStatus

from monitor.web.connections import Limits, Loop, Response, plain_text
from monitor.web.metrics import Metrics
from monitor.web.page import render_status_page
from monitor.web.snapshot import LatestStatus, OnDemandStatus, StatusSnapshot, StatusSource

__all__ = [
    "LatestStatus",
    "Limits",
    "OnDemandStatus",
    "StatusServer",
    "StatusSnapshot",
    "StatusSource",
    "parse_listen",
]

logger = logging.getLogger(__name__)

#: The page draws no script, frame or remote asset; only its own inline style.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _json(status: int, document: object) -> Response:
    body = json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n"
    return Response(status, "application/json; charset=utf-8", body)


_HEALTHY = plain_text(HTTPStatus.OK, "ok\n")
_NOT_FOUND = plain_text(HTTPStatus.NOT_FOUND, "not found\n")
_NOT_ALLOWED = plain_text(
    HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n", ("Allow", "GET, HEAD")
)


def _readiness(snapshot: StatusSnapshot) -> Response:
    code = HTTPStatus.OK if snapshot.ready else HTTPStatus.SERVICE_UNAVAILABLE
    document = {"ready": snapshot.ready, "leader": snapshot.leader}
    return _json(code, {**document, "sources": snapshot.sources})


def _status_document(snapshot: StatusSnapshot) -> Response:
    return _json(HTTPStatus.OK, snapshot.to_json())


def _page(snapshot: StatusSnapshot) -> Response:
    return Response(
        HTTPStatus.OK,
        "text/html; charset=utf-8",
        render_status_page(snapshot).encode(),
        (("Content-Security-Policy", _PAGE_POLICY), ("X-Frame-Options", "DENY")),
    )


class _Rendered:
    """One route's response, rendered once per snapshot and reused while it is current.

    Every source hands out the same snapshot object until there is a newer one
    (`LatestStatus` until the next publish, `SnapshotCache` until the next refresh,
    `OnDemandStatus` for `max_age`), so identity is the key: clients polling in a loop
    cost one render per snapshot. Renders are single-flight; the others wait for it. Only
    a weak reference to the snapshot is kept: once its source lets it go, the response goes
    too (a rendered page of thousands of batches is megabytes).
    """

    def __init__(self, render: Callable[[StatusSnapshot], Response]) -> None:
        self._render = render
        self._lock = threading.Lock()
        self._latest: tuple[weakref.ref[StatusSnapshot], Response] | None = None
        self.count = 0

    def of(self, snapshot: StatusSnapshot) -> Response:
        with self._lock:
            latest = self._latest
            if latest is None or latest[0]() is not snapshot:
                latest = (weakref.ref(snapshot, self._forget), self._render(snapshot))
                self._latest = latest
                self.count += 1
            return latest[1]

    def _forget(self, gone: weakref.ref[StatusSnapshot]) -> None:
        # The snapshot was let go: so is its response (no lock: a collection may run
        # this on a thread that holds it).
        latest = self._latest
        if latest is not None and latest[0] is gone:
            self._latest = None


class _App:
    """Routes a request to a response; knows nothing of sockets."""

    def __init__(self, status: StatusSource, metrics: Metrics) -> None:
        self.status = status
        self.metrics = metrics
        self._rendered = {
            "/readyz": _Rendered(_readiness),
            "/api/status": _Rendered(_status_document),
            "/": _Rendered(_page),
        }

    @property
    def renders(self) -> int:
        return sum(rendered.count for rendered in self._rendered.values())

    def immediate(self, method: str, route: str) -> Response | None:
        """The answer when it needs neither snapshot nor registry (None: a worker's job).

        The loop thread gives these itself, so `/healthz` answers while every worker waits.
        """
        if method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        if route == "/healthz":
            return _HEALTHY
        return None if route == "/metrics" or route in self._rendered else _NOT_FOUND

    def respond(self, route: str, accept: str | None) -> Response:
        """A route `immediate` left to a worker; may wait for the status source."""
        if route == "/metrics":
            body, content_type = self.metrics.exposition(accept)
            return Response(HTTPStatus.OK, content_type, body)
        if route == "/readyz":
            return self._rendered[route].of(self.status.readiness())
        return self._rendered[route].of(self.status.status_snapshot())


class StatusServer:
    """The HTTP server: `start()` binds (port 0: any free port) and starts its threads.

    An idle server sleeps in `select` (no polling); `stop()` ends it at once, closing every
    client connection. `renders` and `connections` show the work it does, for tests.
    """

    def __init__(
        self,
        status: StatusSource,
        metrics: Metrics,
        host: str = "0.0.0.0",
        port: int = 8080,
        limits: Limits | None = None,
    ) -> None:
        self._app = _App(status, metrics)
        self._metrics = metrics
        self._limits = limits or Limits()
        self._requested = (host, port)
        self._listener: socket.socket | None = None
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("server already started")
        host, port = self._requested
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server(
            (host, port),
            family=family,
            backlog=self._limits.backlog,
            dualstack_ipv6=host == "::" and socket.has_dualstack_ipv6(),
        )
        self._loop = Loop(self._listener, self._app, self._metrics, self._limits)
        self._thread = threading.Thread(target=self._loop.run, name="http", daemon=True)
        self._thread.start()
        logger.info("serving HTTP on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, close every connection and the socket, and wait for the loop."""
        if self._listener is None or self._loop is None or self._thread is None:
            return
        self._loop.stop()
        self._thread.join()
        self._listener.close()
        self._listener = self._loop = self._thread = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when 0 was asked for."""
        if self._listener is None:
            raise RuntimeError("server not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    @property
    def renders(self) -> int:
        """Responses rendered from a snapshot so far (JSON documents and pages)."""
        return self._app.renders

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return 0 if self._loop is None else self._loop.connections

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
