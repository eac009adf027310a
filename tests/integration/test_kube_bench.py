"""The Kubernetes source benchmark runs end to end in its small smoke mode."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kube_source.py"


def test_the_benchmark_smoke_run_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--small"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert re.search(r"initial sync, source +2000 Jobs", result.stdout), result.stdout
    assert "watch backlog, client models" in result.stdout
    ratios = re.search(r"source vs models: sync x([\d.]+), watch x([\d.]+)", result.stdout)
    assert ratios is not None, result.stdout
    # The source must beat model deserialization clearly even at this small size.
    assert float(ratios.group(1)) > 2
    assert float(ratios.group(2)) > 2
