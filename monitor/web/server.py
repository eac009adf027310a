"""The daemon's HTTP face: health, readiness, metrics, the status API and the status page.

The server never touches the engine. It asks a `StatusSource` for an immutable
`StatusSnapshot` (built under the engine's lock with `StatusSnapshot.from_engine`): either
the engine's thread publishes one after each step into a `LatestStatus` (requests never
wait), or `OnDemandStatus` builds one when asked, at most once a second (nothing is built
while nobody looks).

    status = LatestStatus()
    server = StatusServer(status, metrics, host="0.0.0.0", port=8080)
    server.start()                      # two daemon threads and a small pool; port 0: any port
    status.publish(StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=now))
    server.stop()

Routes (GET and HEAD only): `/healthz`, `/readyz` (503 until the sources synced; a standby
replica under leader election is ready), `/metrics`, `/api/status` and `/` (the HTML page).

Clients are not trusted to be quick, few or well-behaved, so no client ever owns a thread.
One loop thread owns every socket (non-blocking, in a selector): it accepts, reads request
heads under a deadline, answers what needs no data (`/healthz`, 404, 405, 400) itself, and
writes every response under a deadline. Only a complete request for the snapshot or the
metrics reaches one of a fixed few worker threads, and only to be rendered; at most
`Limits.connections` such requests are in hand at once, and the next is answered 503 at
once. A crowd of idle sockets displaces its own oldest member, never the kubelet's probe.
Rendered responses are reused while the source hands out the same snapshot, so any number
of clients polling `/api/status` or `/` cost one render per snapshot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import selectors
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.core.engine import Engine
from monitor.core.schedule import iso
from monitor.web.metrics import HttpRefusal, Metrics
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
class Limits:
    """What all clients together, and each one, may take of the process.

    `connections` requests are in hand at once (queued for, or rendered by, one of `workers`
    threads, then written); a complete request beyond that gets 503 at once. A connection has
    `header_timeout` seconds from accept to send its request head (at most `max_head_bytes`)
    and `write_timeout` seconds to take its whole response, however steadily it trickles.
    Up to `waiting` connections may be sending their heads; one more displaces the oldest.
    """

    connections: int = 32
    workers: int = 4
    waiting: int = 512
    header_timeout: float = 5.0
    write_timeout: float = 10.0
    max_head_bytes: int = 8192
    backlog: int = 128


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, document: object) -> _Response:
    body = json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n"
    return _Response(status, "application/json; charset=utf-8", body)


def _text(status: int, text: str, *headers: tuple[str, str]) -> _Response:
    return _Response(status, "text/plain; charset=utf-8", text.encode(), headers)


_HEALTHY = _text(HTTPStatus.OK, "ok\n")
_NOT_FOUND = _text(HTTPStatus.NOT_FOUND, "not found\n")
_NOT_ALLOWED = _text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n", ("Allow", "GET, HEAD"))
_BAD_REQUEST = _text(HTTPStatus.BAD_REQUEST, "bad request\n")
_TOO_LARGE = _text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large\n")
_BUSY = _text(HTTPStatus.SERVICE_UNAVAILABLE, "busy, retry\n", ("Retry-After", "1"))
_FAILED = _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")


def _readiness(snapshot: StatusSnapshot) -> _Response:
    code = HTTPStatus.OK if snapshot.ready else HTTPStatus.SERVICE_UNAVAILABLE
    document = {"ready": snapshot.ready, "leader": snapshot.leader}
    return _json(code, {**document, "sources": snapshot.sources})


def _status_document(snapshot: StatusSnapshot) -> _Response:
    return _json(HTTPStatus.OK, snapshot.to_json())


def _page(snapshot: StatusSnapshot) -> _Response:
    return _Response(
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
    cost one render per snapshot. Renders are single-flight; the others wait for it.
    """

    def __init__(self, render: Callable[[StatusSnapshot], _Response]) -> None:
        self._render = render
        self._lock = threading.Lock()
        self._latest: tuple[StatusSnapshot, _Response] | None = None
        self.count = 0

    def of(self, snapshot: StatusSnapshot) -> _Response:
        with self._lock:
            if self._latest is None or self._latest[0] is not snapshot:
                self._latest = (snapshot, self._render(snapshot))
                self.count += 1
            return self._latest[1]


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

    def immediate(self, method: str, route: str) -> _Response | None:
        """The answer when it needs neither snapshot nor registry (None: a worker's job).

        The loop thread gives these itself, so `/healthz` answers while every worker waits.
        """
        if method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        if route == "/healthz":
            return _HEALTHY
        return None if route == "/metrics" or route in self._rendered else _NOT_FOUND

    def respond(self, route: str, accept: str | None) -> _Response:
        """A route `immediate` left to a worker; may wait for the status source."""
        if route == "/metrics":
            body, content_type = self.metrics.exposition(accept)
            return _Response(HTTPStatus.OK, content_type, body)
        return self._rendered[route].of(self.status.status_snapshot())


@dataclass(frozen=True)
class _Request:
    method: str
    route: str
    accept: str | None


#: The blank line that ends a request head (bare LF line ends tolerated, as clients send them).
_HEAD_END = re.compile(rb"\n\r?\n")


def _parse_head(head: bytes) -> _Request | None:
    """The request line and the one header used; None when it is not an HTTP/1 request."""
    lines = head.decode("latin-1").splitlines()
    words = lines[0].split() if lines else []
    if len(words) != 3 or not words[2].startswith("HTTP/1."):
        return None
    accept = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        if accept is None and name.lower() == "accept":
            accept = value.strip()
    return _Request(words[0], urlsplit(words[1]).path, accept)


def _encode_head(response: _Response) -> bytes:
    """Status line and headers: HTTP/1.0 with `Connection: close`, one request per connection."""
    lines = [
        f"HTTP/1.0 {response.status} {HTTPStatus(response.status).phrase}",
        "Server: sla-monitor",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        *(f"{name}: {value}" for name, value in response.headers),
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection:
    """One client socket: its request head so far, its deadline, and what is left to send."""

    __slots__ = ("busy", "closed", "deadline", "head", "out", "peer", "sock")

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.head = bytearray()
        self.out: list[memoryview] = []
        self.busy = False  # holds one of `Limits.connections` until closed
        self.closed = False

    def send_some(self) -> bool:
        """Send what the socket takes without blocking; True once all of it is sent."""
        while self.out:
            try:
                sent = self.sock.sendmsg(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            while sent:
                first = self.out[0]
                if sent < len(first):
                    self.out[0] = first[sent:]
                    break
                sent -= len(first)
                del self.out[0]
        return True

    def close(self, abort: bool = False) -> None:
        """Close; `abort` resets instead, so the kernel drops what the client never took."""
        self.closed = True
        try:
            if abort:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:  # what the client still sends would make close() reset the connection
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.recv(65536)
        except OSError:
            pass
        self.sock.close()


class _Workers:
    """A fixed number of daemon threads running jobs in turn: clients never add a thread."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"http-worker-{n}", daemon=True)
            for n in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """Let each thread finish its current job and end (not waited for)."""
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


class _Loop:
    """The one thread that owns every client socket and enforces every limit and deadline.

    Connections waiting for their head, and those being written to, are kept oldest first
    (one timeout each, so that is deadline order too): expiring them is a look at the front.
    Workers hand rendered responses back through a queue and a wake-up socket pair.
    """

    #: After accept() fails for want of descriptors with none of ours to free: try again then.
    ACCEPT_PAUSE = 0.1

    def __init__(
        self, listener: socket.socket, app: _App, metrics: Metrics, limits: Limits
    ) -> None:
        self._listener = listener
        self._app = app
        self._metrics = metrics
        self._limits = limits
        self._workers = _Workers(limits.workers)
        self._selector = selectors.DefaultSelector()
        self._waiting: OrderedDict[_Connection, None] = OrderedDict()
        self._writing: OrderedDict[_Connection, None] = OrderedDict()
        self._open: set[_Connection] = set()
        self._busy = 0
        self._done: queue.SimpleQueue[tuple[_Connection, _Response, bool]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._accept_paused_until: float | None = None
        self._stopping = False

    @property
    def connections(self) -> int:
        return len(self._open)

    def run(self) -> None:
        for end in (self._listener, self._wake_read, self._wake_write):
            end.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._workers.start()
        try:
            while not self._stopping:
                for key, _ in self._selector.select(self._timeout()):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_read:
                        self._drain_wake_ups()
                    elif not key.data.closed:
                        self._progress_or_close(key.data)
                self._expire(time.monotonic())
        finally:
            self._shut_down()

    def stop(self) -> None:
        """Ask the loop to end (from any thread); it closes every client socket on its way."""
        self._stopping = True
        self._wake()

    # -- one event each ---------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # then serve the others before accepting more
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:  # out of descriptors: free the oldest idle one, or wait
                logger.warning("HTTP accept failed: %s", error)
                if self._waiting:
                    self._drop(next(iter(self._waiting)), "crowded")
                else:
                    self._selector.unregister(self._listener)
                    self._accept_paused_until = time.monotonic() + self.ACCEPT_PAUSE
                return
            sock.setblocking(False)
            if len(self._waiting) >= self._limits.waiting:
                self._drop(next(iter(self._waiting)), "crowded")
            now = time.monotonic()
            connection = _Connection(sock, str(peer[0]), now + self._limits.header_timeout)
            self._open.add(connection)
            self._waiting[connection] = None
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _progress_or_close(self, connection: _Connection) -> None:
        """One client's bytes must never end the loop that serves all of them."""
        try:
            self._progress(connection)
        except Exception:
            logger.exception("HTTP connection from %s failed", connection.peer)
            self._close(connection, abort=True)

    def _progress(self, connection: _Connection) -> None:
        if connection in self._writing:
            self._flush(connection)
            return
        try:
            data = connection.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # gone before it finished asking
            self._close(connection)
            return
        searched_from = max(0, len(connection.head) - 2)
        connection.head += data
        end = _HEAD_END.search(connection.head, searched_from)
        if (end.start() if end else len(connection.head)) > self._limits.max_head_bytes:
            self._metrics.http_refused("oversized")
            self._respond(connection, _TOO_LARGE, send_body=True)
        elif end is not None:
            self._dispatch(connection, _parse_head(bytes(connection.head[: end.start()])))

    def _dispatch(self, connection: _Connection, request: _Request | None) -> None:
        if request is None:
            self._respond(connection, _BAD_REQUEST, send_body=True)
            return
        logger.debug("%s %s %s", connection.peer, request.method, request.route)
        send_body = request.method != "HEAD"
        answer = self._app.immediate(request.method, request.route)
        if answer is not None:
            self._respond(connection, answer, send_body)
        elif self._busy >= self._limits.connections:
            self._metrics.http_refused("busy")
            self._respond(connection, _BUSY, send_body)
        else:
            self._unwatch(connection)
            connection.busy = True
            self._busy += 1
            self._workers.submit(lambda: self._render(connection, request, send_body))

    def _render(self, connection: _Connection, request: _Request, send_body: bool) -> None:
        """On a worker thread: the only code that may wait for the status source."""
        try:
            response = self._app.respond(request.route, request.accept)
        except Exception:
            logger.exception("error serving %s", request.route)
            response = _FAILED
        self._done.put((connection, response, send_body))
        self._wake()

    def _drain_wake_ups(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                connection, response, send_body = self._done.get_nowait()
            except queue.Empty:
                return
            if not connection.closed:
                self._respond(connection, response, send_body)

    # -- connection states ------------------------------------------------------------------

    def _respond(self, connection: _Connection, response: _Response, send_body: bool) -> None:
        """Start writing `response`; what the socket does not take now waits for writability."""
        self._unwatch(connection)
        connection.out = [memoryview(_encode_head(response))]
        if send_body and response.body:
            connection.out.append(memoryview(response.body))
        connection.deadline = time.monotonic() + self._limits.write_timeout
        self._writing[connection] = None
        if not self._flush(connection):
            self._selector.register(connection.sock, selectors.EVENT_WRITE, connection)

    def _flush(self, connection: _Connection) -> bool:
        """Send what fits; True (and closed) once all is sent or the client is gone."""
        try:
            if not connection.send_some():
                return False
        except OSError:
            pass
        self._close(connection)
        return True

    def _expire(self, now: float) -> None:
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._selector.register(self._listener, selectors.EVENT_READ)
        deadlines: tuple[tuple[OrderedDict[_Connection, None], HttpRefusal], ...] = (
            (self._waiting, "slow_request"),
            (self._writing, "slow_reader"),
        )
        for connections, reason in deadlines:
            while connections and (oldest := next(iter(connections))).deadline <= now:
                self._drop(oldest, reason)

    def _timeout(self) -> float | None:
        """Seconds until the nearest deadline, None (sleep until an event) when there is none."""
        deadlines = [next(iter(c)).deadline for c in (self._waiting, self._writing) if c]
        if self._accept_paused_until is not None:
            deadlines.append(self._accept_paused_until)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _unwatch(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)
        self._writing.pop(connection, None)
        with contextlib.suppress(KeyError, ValueError):  # not registered now
            self._selector.unregister(connection.sock)

    def _drop(self, connection: _Connection, reason: HttpRefusal) -> None:
        self._metrics.http_refused(reason)
        self._close(connection, abort=reason == "slow_reader")

    def _close(self, connection: _Connection, abort: bool = False) -> None:
        self._unwatch(connection)
        self._open.discard(connection)
        if connection.busy:
            connection.busy = False
            self._busy -= 1
        connection.close(abort)

    def _wake(self) -> None:
        # Full: a wake-up is pending anyway. Closed: the loop has ended.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"!")

    def _shut_down(self) -> None:
        self._workers.stop()
        for connection in list(self._open):
            self._close(connection, abort=True)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()


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
        self._loop: _Loop | None = None
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
        self._loop = _Loop(self._listener, self._app, self._metrics, self._limits)
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
