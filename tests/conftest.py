"""Suite-wide fixtures. The network tripwire: a test may talk only to loopback.

Every fake this suite uses listens on 127.0.0.1; a connection anywhere else means a test
reached for the real Kubernetes, Slack or Google Cloud (a default endpoint, a metadata-server
probe, a forgotten override). Such a test fails loudly instead of passing on a machine that
happens to have network access, or hanging on one that has none.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class NonLoopbackConnection(AssertionError):
    """A test tried to open a connection to an address that is not loopback."""


def _is_loopback(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if family not in (socket.AF_INET, socket.AF_INET6):
        return False
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a name other than localhost: it would be resolved to anywhere


#: Every refused address since the current test began (a library may swallow the error).
VIOLATIONS: list[str] = []


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(self.family, address):
            VIOLATIONS.append(repr(address))
            raise NonLoopbackConnection(f"tests may only connect to loopback, not {address!r}")
        return original(self, address, *args, **kwargs)

    return connect


@pytest.fixture(autouse=True, scope="session")
def network_tripwire() -> Iterator[None]:
    """Refuse any socket connection to a non-loopback address, for the whole session."""
    originals = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}
    for name, original in originals.items():
        setattr(socket.socket, name, _guarded(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(socket.socket, name, original)


@pytest.fixture(autouse=True)
def no_network_escape(network_tripwire: None) -> Iterator[None]:
    """Fail the test even when the code under test caught the tripwire's error and went on."""
    VIOLATIONS.clear()
    yield
    escaped, VIOLATIONS[:] = list(VIOLATIONS), []
    assert not escaped, f"the test tried to reach the network beyond loopback: {escaped}"
