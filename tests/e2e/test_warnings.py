"""Warnings through the real daemon: `at_risk` before a deadline from past durations, the
miss saying why, `overrun` of a hung run resolved when it ends, history in /api/status."""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.testing.stack import LocalStack, cron_at
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    batch_status,
    decided_after,
    duplicates,
    everything_sent,
    freshness_batch,
    kinds,
    metric,
    now,
    of_kind,
    received_at,
    reconfigure,
    spawn_configured,
    until,
)


def test_a_run_that_does_not_start_is_at_risk_before_the_deadline_then_missed(
    stack: LocalStack,
) -> None:
    daemon, deadline = spawn_configured(
        stack,
        {},
        16,
        lambda at: [
            {
                "name": "nightly",
                "match": {"namespace": "ml", "cronjob": "nightly"},
                "deadline": cron_at(at),
                "window": "1h",
            }
        ],
    )
    jobs = stack.kube.jobs
    # Five earlier runs of 4 s each, before this deadline's 1 h window: the p90 is 4 s.
    first = now() - timedelta(hours=3)
    for index in range(5):
        started = first + timedelta(minutes=index)
        name = f"nightly-{index}"
        end = started + timedelta(seconds=4)
        jobs.create_finished_job(
            "ml", name, cronjob="nightly", start_time=started, completed_at=end
        )
    wait_until(lambda: len(batch_status(daemon, "nightly")["runs"]) == 5, timeout=5)

    # No run starts: at deadline - 4 s the batch is at risk, before the deadline.
    wait_until(lambda: of_kind(stack.slack, "at_risk"), timeout=until(deadline))
    [risk] = of_kind(stack.slack, "at_risk")
    assert risk.payload["key"] == f"at_risk:nightly@{deadline.isoformat()}"
    warned_at = received_at(risk)
    assert warned_at < deadline.timestamp()
    assert warned_at - (deadline.timestamp() - 4) <= timing_bound(2.0)
    assert "no run has started" in everything_sent(stack.slack)
    assert batch_status(daemon, "nightly")["state"] == "at_risk"

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    [missed] = of_kind(stack.slack, "missed_deadline")
    assert "No run started since" in (str(missed.blocks) + (missed.text or ""))
    wait_until(lambda: stack.slack.message(risk.ts).text.startswith("[Closed]"), timeout=5)
    status = batch_status(daemon, "nightly")
    assert status["on_time_rate"] == 0.0
    assert [run["outcome"] for run in status["runs"]] == ["succeeded"] * 5
    assert status["runs"][0]["duration_seconds"] == 4
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["at_risk", "missed_deadline"]
    assert duplicates(stack.slack) == {}


def test_a_run_over_max_runtime_is_one_overrun_resolved_when_it_ends(stack: LocalStack) -> None:
    path = stack.write_config({"batches": [freshness_batch("embed", "1h", max_runtime="3s")]})
    daemon = stack.spawn(path)
    daemon.wait_ready()
    jobs = stack.kube.jobs
    jobs.create_job("ml", "embed-1", cronjob="embed")
    started = time.monotonic()
    wait_until(lambda: of_kind(stack.slack, "overrun"), timeout=10)
    [overrun] = of_kind(stack.slack, "overrun")
    assert overrun.arrived - started >= 3.0 - 1.0  # not before max_runtime (1 s stamps)
    assert overrun.arrived - started <= 3.0 + timing_bound(2.0)
    uid = stack.kube.get("batch", "jobs", "ml", "embed-1")["metadata"]["uid"]
    assert overrun.payload == {
        "kind": "overrun",
        "batch": "embed",
        "key": f"overrun:ml/embed-1@{uid}",
    }
    assert batch_status(daemon, "embed")["state"] == "running"
    jobs.complete_job("ml", "embed-1")
    wait_until(lambda: of_kind(stack.slack, "recovered"), timeout=5)
    [ended] = of_kind(stack.slack, "recovered")
    assert ended.thread_ts == overrun.ts
    wait_until(lambda: stack.slack.message(overrun.ts).text.startswith("[Resolved]"), timeout=5)
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["overrun", "recovered"]


def test_the_status_page_of_a_running_daemon_renders_in_chromium(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The page a person opens: served by the daemon itself, rendered by a real browser
    (Debian's chromium; skipped, saying so, where it is not installed)."""
    from tests.integration.test_status_page_browser import render

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    path = stack.write_config(
        {"batches": [freshness_batch("embed", "1h", max_runtime="1h"), freshness_batch("x", "2h")]}
    )
    daemon = stack.spawn(path)
    daemon.wait_ready()
    stack.kube.jobs.create_job("ml", "embed-1", cronjob="embed")
    stack.kube.jobs.complete_job("ml", "embed-1")
    wait_until(lambda: batch_status(daemon, "embed")["runs"], timeout=5)
    dom = render(browser, f"{daemon.url}/", tmp_path / "profile")
    names = re.findall(r'<strong class="name">([^<]*)</strong>', dom)
    assert sorted(names) == ["embed", "x"]
    runs = re.findall(r'<li class="run" data-run="([a-z ]+)" title="[a-z ]+: ([^,]+),', dom)
    assert runs == [("succeeded", "embed-1")]  # the strip, as the browser built it
    assert daemon.terminate() == 0


def test_a_deadline_inside_a_silence_posts_nothing_until_the_silence_ends(
    stack: LocalStack,
) -> None:
    """The miss is recorded, not posted; the incident still open when the silence ends is
    posted within 2 s of its end; a batch silenced but met stays silent."""
    ends: list[datetime] = []

    def batches(at: datetime) -> list[dict[str, object]]:
        ends[:] = [at + timedelta(seconds=4)]
        return [
            {"name": "frozen", "match": {"namespace": "ml", "cronjob": "frozen"},
             "deadline": cron_at(at)},
            {"name": "fine", "match": {"namespace": "ml", "cronjob": "fine"},
             "deadline": cron_at(at)},
        ]  # fmt: skip

    silence_start = now()
    daemon, deadline = spawn_configured(stack, {}, 12, batches)
    settings = {
        "silences": [
            {"batches": ["*"], "from": silence_start.isoformat(),
             "until": ends[0].isoformat(), "reason": "maintenance"}
        ]
    }  # fmt: skip
    reconfigure(stack, daemon, {**settings, "batches": batches(deadline)})
    stack.kube.jobs.create_job("ml", "fine-1", cronjob="fine")
    stack.kube.jobs.complete_job("ml", "fine-1")
    wait_until(lambda: batch_status(daemon, "frozen")["state"] == "silenced", timeout=5)
    assert now() < deadline, "the silence landed after the deadline: the test proves nothing"
    wait_until(lambda: decided_after(daemon, "frozen", deadline), timeout=until(deadline))
    assert stack.slack.messages == []  # missed inside the silence: not posted
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(ends[0]))
    [missed] = of_kind(stack.slack, "missed_deadline")
    assert missed.payload["key"] == f"frozen@{deadline.isoformat()}"
    assert received_at(missed) - ends[0].timestamp() <= timing_bound(2.0)
    assert received_at(missed) >= ends[0].timestamp() - 0.05
    assert metric(daemon, 'sla_monitor_alerts_suppressed_total{batch="frozen"}') == 1.0
    assert daemon.terminate() == 0
    assert kinds(stack.slack) == ["missed_deadline"]
