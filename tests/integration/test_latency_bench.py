"""The latency benchmark runs end to end in its small smoke mode and prints every row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "latency.py"


def test_the_latency_benchmark_smoke_run_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--small"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    rows = {
        match.group(1).strip(): float(match.group(2))
        for match in re.finditer(r"^(.+?)\s+([\d.]+) (?:ms|s|MB|%)", result.stdout, re.M)
    }
    # Every failure and every deadline reached Slack (the counts are in the row names).
    assert "failure -> Slack, p99 (20 events)" in rows, result.stdout
    assert "deadline -> Slack, p99 (10 deadlines)" in rows, result.stdout
    assert 0 < rows["failure -> Slack, p50 (20 events)"] < 2000
    # A deadline is never posted before it passes.
    assert rows["deadline -> Slack, p50 (10 deadlines)"] > 0
    assert 0 < rows["RSS idle (200 batches, 2000 Jobs)"] < 400
    idle = re.search(
        r"^idle CPU \(200 batches, 2000 Jobs, 3 s\)\s+([\d.]+) % of a core", result.stdout, re.M
    )
    assert idle is not None, result.stdout
    assert float(idle.group(1)) < 100
