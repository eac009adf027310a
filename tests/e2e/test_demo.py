"""`sla-monitor demo` as a person runs it: every scripted alert printed once, exit 0; and
Ctrl-C ends it together with the daemon it started, leaving no files behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from monitor.testing.wait import patient, wait_until

ALERT = re.compile(r"^\d\d:\d\d:\d\d \[(\w+)\] Slack #([\w-]+)")
DAEMON = re.compile(r"daemon\s+pid (\d+)")
CONFIG = re.compile(r"config\s+(\S+)")


class Output:
    """The demo's stdout, read line by line as it is written."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next((m for line in list(self.lines) if (m := pattern.search(line))), None)

    def text(self) -> str:
        return "".join(self.lines)


def start_demo() -> tuple[subprocess.Popen[str], Output]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SLACK_BOT_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, like a shell job
    )
    return process, Output(process)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_the_fast_demo_prints_every_scripted_alert_once_and_exits_0() -> None:
    process, output = start_demo()
    code = process.wait(timeout=patient(90))
    text = output.text()
    assert code == 0, text
    assert "status page  http://127.0.0.1:" in text
    printed = [m.groups() for line in output.lines if (m := ALERT.match(line))]
    assert Counter(kind for kind, _ in printed) == {
        "job_failed": 2,  # a Job's BackoffLimitExceeded and an Argo Workflow's phase Failed
        "missed_deadline": 1,
        "at_risk": 2,  # feature-build's hung run outlasts its usual duration (today's and
        "overrun": 1,  # tomorrow's deadline), then its max_runtime
        "traceback": 1,
        "stale": 1,
        "recovered": 3,  # the late batch, the stale one, the overrun run when it ends
    }, text
    channels = dict(printed)
    assert channels["job_failed"] == channels["traceback"] == "ml-batch-errors"
    assert "Workflow failed: ml-batch/nightly-pipeline-7k2p (Failed)" in text
    assert channels["missed_deadline"] == channels["stale"] == "ml-batch-alerts"
    assert "(BackoffLimitExceeded)" in text
    assert "KeyError: 'user_embedding_v2'" in text
    assert text.count("[edited] [Resolved]") == 3
    assert text.count("[edited] [Closed]") == 1  # the warning, superseded by the miss
    assert text.index("At risk: feature-build") < text.index("Missed deadline: feature-build")
    assert "recommend-daily did not complete" not in text  # the on-time batch stays silent


def test_ctrl_c_ends_the_demo_and_the_daemon_and_removes_its_files() -> None:
    """The terminal signals the whole foreground group: demo and daemon both get SIGINT."""
    process, output = start_demo()
    try:
        wait_until(lambda: output.find(re.compile("▸")), timeout=60, step=0.05)
        daemon = output.find(DAEMON)
        config = output.find(CONFIG)
        assert daemon is not None
        assert config is not None
        daemon_pid = int(daemon.group(1))
        assert not gone(daemon_pid)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(timeout=patient(20)) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert "Interrupted" in output.text()
    wait_until(lambda: gone(daemon_pid), timeout=5)
    assert not Path(config.group(1)).parent.exists()
