"""End-to-end fixtures: the loopback world, and daemons started as real subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.testing.stack import LocalStack


def _world(path: Path, *, cloud_logging: bool) -> Iterator[LocalStack]:
    with LocalStack(path, cloud_logging=cloud_logging) as world:
        yield world
    for process in world.processes:
        print(f"--- {process.log_path.name} ---\n{process.logs()[-4000:]}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    yield from _world(tmp_path, cloud_logging=False)


@pytest.fixture
def logging_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """The world plus a fake Cloud Logging (its URL is filled into `cloud_logging`)."""
    yield from _world(tmp_path, cloud_logging=True)
