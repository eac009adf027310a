"""The network tripwire itself: loopback passes, anything else is refused and recorded."""

from __future__ import annotations

import socket

import pytest

from tests import conftest


def test_a_connection_beyond_loopback_is_refused_and_recorded() -> None:
    with pytest.raises(conftest.NonLoopbackConnection):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(conftest.NonLoopbackConnection):
        sock.connect_ex(("2001:db8::1", 443, 0, 0))
    assert conftest.VIOLATIONS == ["('192.0.2.1', 443)", "('2001:db8::1', 443, 0, 0)"]
    conftest.VIOLATIONS.clear()  # this test provoked them on purpose


def test_loopback_connections_pass() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            accepted, _ = server.accept()
            accepted.close()
    assert conftest.VIOLATIONS == []
