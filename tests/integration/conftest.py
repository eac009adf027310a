"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.testing.logging_api import FakeCloudLogging
from tests.integration.logging_support import Clock, Harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    with FakeCloudLogging() as api:
        yield Harness(api, Clock())
