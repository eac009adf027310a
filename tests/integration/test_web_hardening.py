"""The HTTP server under hostile or careless clients, over real sockets on 127.0.0.1.

Slow clients that hold sockets, clients that never read, and crowds polling the status:
none of them may take a thread of their own, lock the kubelet's `/healthz` probe out, or
make the server render the same snapshot twice.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.engine import Engine
from monitor.testing.wait import patient, timing_bound, wait_until
from monitor.web.metrics import Metrics
from monitor.web.server import (
    LatestStatus,
    Limits,
    OnDemandStatus,
    StatusServer,
    StatusSnapshot,
)
from tests.unit.engine_helpers import T0, advance, deadline_batch, make_config

Address = tuple[str, int]
#: A request head that never ends: a request line, then one header that grows forever.
ENDLESS_HEAD = b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 8000


def refusals(metrics: Metrics, reason: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition()[0].decode()):
        for sample in family.samples:
            if sample.name == "sla_monitor_http_refused_total" and (
                sample.labels["reason"] == reason
            ):
                return sample.value
    raise AssertionError(f"no sla_monitor_http_refused_total{{reason={reason!r}}}")


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def request(address: Address, path: str = "/healthz", timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET over a fresh connection, as the kubelet probes."""
    with socket.create_connection(address, timeout=patient(timeout)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        reply = read_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def is_closed(sock: socket.socket) -> bool:
    """Whether the peer closed or reset the connection (looks without consuming)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@dataclass
class Crowd:
    """Clients that connect, then send a request head one byte at a time, or nothing.

    Every `every` seconds each trickling client sends its next byte; with `watch`, each pass
    also notes the moment it finds a client closed by the server.
    """

    address: Address
    count: int
    every: float = 1.0
    head: bytes = ENDLESS_HEAD
    watch: bool = False
    sockets: list[socket.socket] = field(default_factory=list)
    opened_at: float = 0.0
    closed_at: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def trickling(self, index: int) -> bool:
        return index % 2 == 0

    def __enter__(self) -> Crowd:
        self.opened_at = time.monotonic()
        for _ in range(self.count):
            sock = socket.create_connection(self.address, timeout=patient(5))
            sock.setblocking(False)
            self.sockets.append(sock)
        self._thread = threading.Thread(target=self._run, name="crowd", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        sent = 0
        while not self._stop.wait(self.every):
            byte = self.head[sent : sent + 1]
            sent += 1
            for index, sock in enumerate(self.sockets):
                if index in self.closed_at:
                    continue
                try:
                    if byte and self.trickling(index):
                        sock.send(byte)
                except OSError:
                    self.closed_at[index] = time.monotonic()
                    continue
                if self.watch and is_closed(sock):
                    self.closed_at[index] = time.monotonic()

    def still_open(self) -> int:
        return sum(not is_closed(sock) for sock in self.sockets)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=patient(5))
        for sock in self.sockets:
            sock.close()


def snapshot_of(*names: str, at: timedelta = timedelta(hours=9)) -> StatusSnapshot:
    """A real engine's snapshot with one deadline batch per name."""
    engine = Engine(make_config(*(deadline_batch(name) for name in names)), started_at=T0)
    advance(engine, T0 + at)
    return StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=T0 + at)


@contextmanager
def serving(
    status: LatestStatus | OnDemandStatus | GatedStatus,
    metrics: Metrics | None = None,
    **limits: Any,
) -> Iterator[StatusServer]:
    server = StatusServer(
        status, metrics or Metrics(), host="127.0.0.1", port=0, limits=Limits(**limits)
    )
    with server:
        yield server


def test_healthz_answers_fast_and_threads_stay_few_while_300_slow_clients_hold_sockets() -> None:
    before = threading.active_count()
    # The crowd stays connected for the whole test.
    with serving(LatestStatus(snapshot_of("daily")), header_timeout=120.0) as server:
        threads_allowed = before + Limits().workers + 1 + 1 + 2  # workers, loop, crowd, slack
        with Crowd(server.address, 300, every=0.5) as crowd:
            latencies = []
            for _ in range(100):
                started = time.perf_counter()
                status, body = request(server.address)
                latencies.append(time.perf_counter() - started)
                assert (status, body) == (200, b"ok\n")
            assert threading.active_count() <= threads_allowed
            assert request(server.address, "/api/status")[0] == 200  # the workers are free
            assert crowd.still_open() == 300  # the crowd was held throughout, not dropped
            assert threading.active_count() <= threads_allowed
    p99 = sorted(latencies)[98]
    assert p99 < timing_bound(0.025), f"healthz p99 {p99 * 1000:.1f} ms"


def test_a_client_slower_than_the_header_deadline_is_dropped_on_time() -> None:
    metrics = Metrics()
    with (
        serving(LatestStatus(), metrics, header_timeout=1.0) as server,
        Crowd(server.address, 20, every=0.05, watch=True) as crowd,
    ):
        # One more, slow but within its deadline: a full request over about half a second.
        with socket.create_connection(server.address, timeout=patient(5)) as patient_client:
            for byte in b"GET /healthz HTTP/1.0\r\n\r\n":
                patient_client.send(bytes([byte]))
                time.sleep(0.02)
            assert read_all(patient_client).startswith(b"HTTP/1.0 200 OK")
        wait_until(lambda: len(crowd.closed_at) == 20, timeout=timing_bound(1.0) + 1.0)
        held = [at - crowd.opened_at for at in crowd.closed_at.values()]
    assert min(held) >= 1.0  # never before the deadline, though half of them kept sending
    assert max(held) <= 1.0 + timing_bound(1.0)
    assert refusals(metrics, "slow_request") == 20


def never_reading(address: Address, path: str) -> socket.socket:
    """A client that asks for `path` and never reads, with a receive buffer that fills fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return sock


def test_a_client_that_never_reads_is_cut_off_at_the_write_deadline_and_holds_no_worker() -> None:
    huge = StatusSnapshot([{"name": "huge", "detail": "x" * 12_000_000}], [], {}, True, True, T0)
    metrics = Metrics()
    with serving(LatestStatus(huge), metrics, write_timeout=2.0, workers=2) as server:
        full = len(request(server.address, "/api/status")[1])  # rendered once, shared after
        before = threading.active_count()
        asked = time.monotonic()
        stalled = [never_reading(server.address, "/api/status") for _ in range(6)]
        # More stalled clients than workers, and still a worker answers at once.
        started = time.monotonic()
        assert request(server.address, "/readyz")[0] == 200
        assert time.monotonic() - started < timing_bound(0.5)
        assert threading.active_count() <= before

        reset_at: dict[int, float] = {}

        def all_reset() -> bool:
            for index, sock in enumerate(stalled):
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error == errno.ECONNRESET and index not in reset_at:
                    reset_at[index] = time.monotonic()
            return len(reset_at) == len(stalled)

        wait_until(all_reset, timeout=2.0 + timing_bound(1.0), step=0.02)
        assert min(reset_at.values()) - asked >= 2.0
        assert max(reset_at.values()) - asked <= 2.0 + timing_bound(1.0)
        wait_until(lambda: server.connections == 0)
        for sock in stalled:
            sock.settimeout(patient(5))
            try:
                received = len(read_all(sock))
            except ConnectionResetError:
                received = 0
            assert received < full  # cut off, not merely slow
            sock.close()
    assert refusals(metrics, "slow_reader") == 6


@dataclass
class Pollers:
    """Clients polling paths in a loop as fast as the server answers."""

    address: Address
    count: int
    paths: Sequence[str]
    requests: int = 0
    bodies: dict[str, bytes] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Pollers:
        self._threads = [
            threading.Thread(target=self._poll, daemon=True) for _ in range(self.count)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            for path in self.paths:
                status, body = request(self.address, path)
                with self._lock:
                    self.requests += 1
                    self.bodies[path] = body
                    if status != 200:
                        self.failures.append(f"{path}: {status}")

    def seen(self, path: str, text: str) -> bool:
        with self._lock:
            return text.encode() in self.bodies.get(path, b"")

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=patient(10))


def test_many_clients_polling_cost_one_render_per_snapshot_and_see_each_new_one() -> None:
    status = LatestStatus(snapshot_of("alpha"))
    paths = ("/api/status", "/")
    with (
        serving(status) as server,
        Pollers(server.address, 6, paths) as pollers,
    ):
        wait_until(lambda: pollers.requests >= 300, timeout=20)
        assert server.renders == 2  # one JSON document, one page
        status.publish(snapshot_of("beta"))
        wait_until(lambda: all(pollers.seen(path, "beta") for path in paths))
        served = pollers.requests
        wait_until(lambda: pollers.requests >= served + 300, timeout=20)
        assert server.renders == 4
        assert not any(pollers.seen(path, "alpha") for path in paths)
    assert pollers.failures == []


def test_on_demand_snapshots_are_built_and_rendered_once_per_max_age() -> None:
    builds: list[StatusSnapshot] = []

    def build() -> StatusSnapshot:
        builds.append(snapshot_of(f"build-{len(builds)}"))
        return builds[-1]

    status = OnDemandStatus(build, max_age=0.25)
    with serving(status) as server, Pollers(server.address, 6, ["/api/status"]) as pollers:
        wait_until(lambda: len(builds) >= 4, timeout=10)
        wait_until(lambda: pollers.seen("/api/status", "build-3"))
    built, renders = len(builds), server.renders
    assert pollers.requests >= 4 * renders  # most requests reused a render
    assert built <= renders <= built + 1  # every build rendered, once (or a race's twice)
    assert pollers.failures == []


class GatedStatus:
    """A status source that keeps its readers waiting until `gate` opens, as an engine
    thread busy for seconds would."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()
        self._snapshot = snapshot_of("daily")

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            self.waiting += 1
        self.gate.wait(patient(10))
        return self._snapshot


def test_beyond_the_connection_cap_requests_get_503_at_once_and_healthz_still_answers() -> None:
    status, metrics = GatedStatus(), Metrics()
    with serving(status, metrics, connections=3, workers=2) as server:
        replies: list[int] = []
        held = [
            threading.Thread(target=lambda: replies.append(request(server.address, "/")[0]))
            for _ in range(3)
        ]
        for thread in held:
            thread.start()
        wait_until(lambda: status.waiting == 2)  # two rendering, the third queued
        wait_until(lambda: server.connections == 3)
        started = time.monotonic()
        with socket.create_connection(server.address, timeout=patient(5)) as sock:
            sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: test\r\n\r\n")
            refused = read_all(sock)
        assert refused.startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        assert b"\r\nRetry-After: 1\r\n" in refused
        assert request(server.address, "/healthz") == (200, b"ok\n")
        assert time.monotonic() - started < timing_bound(0.5)
        status.gate.set()
        for thread in held:
            thread.join(timeout=patient(5))
        assert replies == [200, 200, 200]
    assert refusals(metrics, "busy") == 1


def test_a_crowd_of_idle_sockets_displaces_its_oldest_not_the_probe() -> None:
    metrics = Metrics()
    with (
        serving(LatestStatus(), metrics, waiting=10, header_timeout=60.0) as server,
        Crowd(server.address, 10, every=60.0) as crowd,
    ):
        wait_until(lambda: server.connections == 10)
        assert request(server.address, "/healthz") == (200, b"ok\n")
        wait_until(lambda: is_closed(crowd.sockets[0]))
        assert [is_closed(sock) for sock in crowd.sockets[1:]] == [False] * 9
    assert refusals(metrics, "crowded") == 1


@pytest.mark.parametrize(
    ("head", "answer"),
    [
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (b"GET /healthz\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\nHost: test\n\n", b"200"),  # bare line feeds are fine
    ],
)
def test_malformed_or_oversized_heads_get_a_quick_error(head: bytes, answer: bytes) -> None:
    with (
        serving(LatestStatus()) as server,
        socket.create_connection(server.address, timeout=patient(5)) as sock,
    ):
        sock.sendall(head)
        assert read_all(sock).split()[1] == answer


def test_readyz_json_renders_follow_the_snapshot() -> None:
    status = LatestStatus(snapshot_of("daily"))
    with serving(status) as server:
        first = json.loads(request(server.address, "/readyz")[1])
        assert first["ready"] is True
        status.publish(StatusSnapshot.starting(T0))
        assert request(server.address, "/readyz")[0] == 503
