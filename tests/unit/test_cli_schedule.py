"""`sla-monitor schedule` prints each batch's deadlines and windows in the batch's own zone."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

CONFIG = """\
timezone: Asia/Tokyo
slack: {channel: "#alerts"}
batches:
  - {name: daily, match: {cronjob: daily}, deadline: "0 9 * * *", grace: 5m}
  - {name: ny, match: {cronjob: ny}, deadline: "30 2 * * *", timezone: America/New_York}
  - {name: fresh, match: {cronjob: fresh}, freshness: 30m}
"""
LINE = re.compile(r"^  (\S+)  window \((\S+), (\S+)\]$")


def test_schedule_prints_every_instant_in_the_batch_zone(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "schedule", str(path), "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sections: dict[str, list[tuple[datetime, ...]]] = {}
    current = ""
    for line in result.stdout.splitlines():
        if match := LINE.match(line):
            sections[current].append(tuple(datetime.fromisoformat(t) for t in match.groups()))
        else:
            current = line.split(":", 1)[0]
            sections[current] = []
    assert [len(rows) for rows in sections.values()] == [3, 3, 0]
    for deadline, start, end in sections["daily"]:
        assert {t.utcoffset().total_seconds() for t in (deadline, start, end)} == {9 * 3600}
        assert (deadline.hour, deadline.minute, end.minute) == (9, 0, 5)
    for deadline, _, _ in sections["ny"]:
        assert deadline.utcoffset().total_seconds() in (-5 * 3600, -4 * 3600)
        assert (deadline.hour, deadline.minute) == (2, 30)
    assert "+00:00" not in result.stdout
