"""The daemon's HTTP side, scraped over real HTTP: health, readiness before and after the
sources sync, Prometheus metrics, the status API's shape and the status page."""

from __future__ import annotations

import json
import time
from datetime import datetime

from monitor.testing.stack import LocalStack
from monitor.testing.wait import wait_until
from tests.e2e.helpers import (
    deadline_batch,
    freshness_batch,
    metric,
    of_kind,
    reconfigure_ahead,
    until,
)

STATES = {"ok", "due", "missed", "stale", "failing"}


def test_health_readiness_metrics_status_api_and_page(stack: LocalStack) -> None:
    config = stack.write_config({"batches": [freshness_batch("feature-refresh", "1h")]})
    stack.kube.fail_requests(503)  # the Kubernetes API is down when the daemon starts
    daemon = stack.spawn(config)
    wait_until(lambda: daemon.get("/healthz")[0] == 200, timeout=15)
    assert daemon.get("/healthz")[1].strip() == b"ok"
    code, body = daemon.get("/readyz")
    assert code == 503, body
    assert json.loads(body)["ready"] is False

    stack.kube.heal()
    daemon.wait_ready(timeout=20)
    ready = json.loads(daemon.get("/readyz")[1])
    assert ready["ready"] is True
    assert ready["leader"] is True
    deadline = reconfigure_ahead(
        stack,
        daemon,
        {},
        3,
        lambda at: [deadline_batch("daily-report", at), freshness_batch("feature-refresh", "1h")],
    )

    stack.kube.jobs.create_job("ml", "feature-refresh-1", cronjob="feature-refresh")
    stack.kube.jobs.fail_job("ml", "feature-refresh-1")
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))

    status = daemon.status()
    assert status["leader"] is True
    by_name = {batch["name"]: batch for batch in status["batches"]}
    assert set(by_name) == {"daily-report", "feature-refresh"}
    for batch in by_name.values():
        assert {"name", "schedule", "state", "last_success", "next_deadline", "open_alerts"} <= set(
            batch
        )
        assert batch["state"] in STATES
        assert isinstance(batch["open_alerts"], list)
        datetime.fromisoformat(batch["next_deadline"])
    daily, refresh = by_name["daily-report"], by_name["feature-refresh"]
    assert daily["schedule"] == "deadline"
    assert refresh["schedule"] == "freshness"
    wait_until(lambda: daemon.status()["batches"][0]["state"] == "missed", timeout=3)
    daily = daemon.status()["batches"][0]
    assert daily["open_alerts"] == [f"daily-report@{deadline.isoformat()}"]
    assert daily["last_success"] is None
    assert datetime.fromisoformat(daily["next_deadline"]) > deadline
    assert refresh["state"] == "failing"

    code, metrics = daemon.get("/metrics")
    assert code == 200
    text = metrics.decode()
    assert text.count("sla_monitor_") > 20
    assert metric(daemon, 'sla_monitor_alerts_posted_total{kind="missed_deadline"}') == 1
    assert metric(daemon, 'sla_monitor_alerts_posted_total{kind="job_failed"}') == 1
    assert metric(daemon, "sla_monitor_leader") == 1
    assert metric(daemon, 'sla_monitor_source_up{source="kubernetes"}') == 1
    assert (metric(daemon, "sla_monitor_relists_total") or 0) >= 1
    assert (metric(daemon, "sla_monitor_slack_post_latency_seconds_count") or 0) >= 2
    last_tick = metric(daemon, "sla_monitor_last_tick_timestamp_seconds")
    assert last_tick is not None
    assert abs(time.time() - last_tick) < 10

    code, page = daemon.get("/")
    assert code == 200
    html = page.decode()
    assert "daily-report" in html
    assert "feature-refresh" in html
    assert "<script" not in html.lower()
    assert daemon.get("/no-such-page")[0] == 404
    assert daemon.terminate() == 0
