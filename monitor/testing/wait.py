"""Waiting on a condition with a deadline: the only way tests may wait for threads.

Tests run on shared machines (CI runners, a busy laptop, `.ci/soak` with every core
saturated), so every deadline here is generous: `wait_until` returns the moment its
condition holds, and only a failing test pays for the patience. `PATIENCE` (environment
`SLA_MONITOR_TEST_PATIENCE`, default 3) multiplies every timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

#: How many times longer than its nominal timeout a wait may take before it fails.
PATIENCE = float(os.environ.get("SLA_MONITOR_TEST_PATIENCE", "3"))

#: A timing guarantee is asserted at this multiple of its nominal bound: the bound holds on a
#: machine running at half speed. The real figures are measured by bench/, not by tests.
HALF_SPEED = 2.0


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, step: float = 0.01) -> None:
    """Return once `predicate()` is truthy; fail with AssertionError after `timeout` seconds
    (times `PATIENCE`)."""
    limit = timeout * PATIENCE
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {limit:.1f}s: {predicate!r}")
        time.sleep(step)


def patient(seconds: float) -> float:
    """A timeout of `seconds` for an API that waits by itself (flush, join, process wait)."""
    return seconds * PATIENCE


def timing_bound(nominal: float) -> float:
    """The bound a test asserts for a guarantee of `nominal` seconds (see `HALF_SPEED`)."""
    return nominal * HALF_SPEED
