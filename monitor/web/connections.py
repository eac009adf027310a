"""The socket side of the HTTP server: one loop thread, a fixed few workers, hard limits.

Clients are not trusted to be quick, few or well-behaved, so no client ever owns a thread.
One `Loop` thread owns every socket (non-blocking, in a selector): it accepts, reads request
heads under a deadline, itself answers a malformed (400) or oversized (431) head and what
its `App` answers without data, and writes every response under a deadline. Only a complete
request the `App` leaves to a worker reaches one of a fixed few worker threads, and only to
be rendered; at most `Limits.connections` such requests are in hand at once, and the next is
answered 503 at once. A crowd of idle sockets displaces its own oldest member, never the
kubelet's probe.

This module knows sockets and HTTP/1 framing, not routes: what to answer is the `App`'s.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import selectors
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol
from urllib.parse import urlsplit

from monitor.web.metrics import HttpRefusal, Metrics

logger = logging.getLogger(__name__)


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
class Response:
    """A whole response, framed by the loop as HTTP/1.0 with `Connection: close`."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def plain_text(status: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(status, "text/plain; charset=utf-8", text.encode(), headers)


_BAD_REQUEST = plain_text(HTTPStatus.BAD_REQUEST, "bad request\n")
_TOO_LARGE = plain_text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large\n")
_BUSY = plain_text(HTTPStatus.SERVICE_UNAVAILABLE, "busy, retry\n", ("Retry-After", "1"))
_FAILED = plain_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")


class App(Protocol):
    """What the loop asks of the application behind it."""

    def immediate(self, method: str, route: str) -> Response | None:
        """The answer the loop thread gives itself; None: a worker renders it with `respond`."""

    def respond(self, route: str, accept: str | None) -> Response:
        """On a worker thread: the answer to a request `immediate` left; may wait."""


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


def _encode_head(response: Response) -> bytes:
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


class Loop:
    """The one thread that owns every client socket and enforces every limit and deadline.

    Connections waiting for their head, and those being written to, are kept oldest first
    (one timeout each, so that is deadline order too): expiring them is a look at the front.
    Workers hand rendered responses back through a queue and a wake-up socket pair.
    """

    #: After accept() fails for want of descriptors with none of ours to free: try again then.
    ACCEPT_PAUSE = 0.1

    def __init__(self, listener: socket.socket, app: App, metrics: Metrics, limits: Limits) -> None:
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
        self._done: queue.SimpleQueue[tuple[_Connection, Response, bool]] = queue.SimpleQueue()
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

    def _respond(self, connection: _Connection, response: Response, send_body: bool) -> None:
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
