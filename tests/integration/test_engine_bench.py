"""The engine benchmark runs end to end in its small smoke mode and prints its whole table
(the timings themselves are not asserted: they belong to the benchmark, not to CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"
ROWS = (
    "config load",
    "engine build",
    "restore",
    "first watermark after restart (2,000 listed)",
    "one save (encode, one batch changed)",
    "state size (JSON)",
)


def test_the_engine_benchmark_smoke_run_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--small"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "engine benchmark: 200 batches, 2,000 completions" in result.stdout, result.stdout
    for row in ROWS:
        line = re.search(rf"^{re.escape(row)} +\S+ \S+ +[≤—].* (PASS|MISS)$", result.stdout, re.M)
        assert line is not None, (row, result.stdout)
    judged = re.search(r"completions, (\d+) actions", result.stdout)
    assert judged is not None
    assert int(judged.group(1)) > 0  # the restart really judged the deadlines it missed
