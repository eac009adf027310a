"""End-to-end fixtures: the loopback world, and daemons started as real subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.testing.stack import LocalStack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(tmp_path) as world:
        yield world
    for process in world.processes:
        print(f"--- {process.log_path.name} ---\n{process.logs()[-4000:]}")
