"""Freed heap is handed back to the system after a big list (glibc's malloc_trim)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monitor.runtime import memory
from monitor.testing.wait import wait_until

pytestmark = pytest.mark.skipif(
    not memory.CAN_RELEASE,
    reason="no glibc malloc_trim on this system: the release is a no-op there",
)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_pages_freed_in_the_middle_of_the_heap_go_back_to_the_system() -> None:
    # 1 KiB blocks come from malloc itself (not Python's small-object pools); keeping every
    # tenth leaves 9 KiB holes that free() alone never returns.
    blocks = [bytes(1024) + bytes([n % 256]) for n in range(150_000)]
    kept = blocks[::10]
    before = rss_mb()
    del blocks
    held = rss_mb()
    assert held > before - 20  # free() alone gave (almost) nothing back
    memory.release_free_memory()
    wait_until(lambda: not any(t.name == "malloc-trim" for t in threading.enumerate()), timeout=10)
    released = held - rss_mb()
    assert released > 40, f"only {released:.0f} MB of ~130 MB freed went back"
    assert len(kept) == 15_000
