"""`sla-monitor backtest` against a fake cluster with a known history: exactly the alerts
the daemon would have posted, and the per-batch summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor import cli
from monitor.testing.kube_api import FakeKubeApi

H = timedelta(hours=1)
DAY = timedelta(days=1)


def last_nine(now: datetime) -> datetime:
    """The latest 09:00 UTC at least an hour ago (so the test never straddles one)."""
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    while now - nine < H:
        nine -= DAY
    return nine


def test_backtest_prints_exactly_the_alerts_the_daemon_would_have_posted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d0 = last_nine(datetime.now(UTC))
    config = tmp_path / "sla.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "slack": {"channel": "#a"},
                "unmatched": {},
                "batches": [
                    {"name": "daily", "match": {"cronjob": "daily"}, "deadline": "0 9 * * *"},
                    {"name": "quiet", "match": {"cronjob": "quiet"}, "deadline": "0 9 * * *"},
                ],
            }
        )
    )
    with FakeKubeApi() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        jobs = kube.jobs

        def run(name: str, start: datetime, end: datetime, cronjob: str = "daily") -> None:
            jobs.create_job("ml", name, cronjob=cronjob, start_time=start)
            jobs.complete_job("ml", name, at=end)

        run("daily-1", d0 - 3 * DAY - H, d0 - 3 * DAY - H / 2)  # met
        # d0 - 2 days: no run at all (missed: the incident opens)
        run("daily-3", d0 - DAY, d0 - DAY + H / 2)  # late: d0 - 1 day missed, then resolved
        jobs.create_job("ml", "daily-4", cronjob="daily", start_time=d0 - 2 * H)
        jobs.fail_job("ml", "daily-4", at=d0 - H)  # job_failed; d0 met by the late run
        for day in range(4):  # "quiet" meets every deadline
            run(f"quiet-{day}", d0 - day * DAY - H, d0 - day * DAY - H / 2, cronjob="quiet")
        uid = kube.get("batch", "jobs", "ml", "daily-4")["metadata"]["uid"]
        assert cli.main(["backtest", "--config", str(config), "--since", "4d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    missed = d0 - 2 * DAY
    assert lines == [
        f"{missed.isoformat()} missed_deadline daily daily@{missed.isoformat()}",
        f"{(d0 - H).isoformat()} job_failed daily job_failed:ml/daily-4@{uid}",
        "daily: 4 deadlines, 2 met, 2 missed, on time 50%",
        "quiet: 4 deadlines, 4 met, 0 missed, on time 100%",
    ]


def test_backtest_reports_a_bad_config_and_a_bad_span(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sla.yaml"
    config.write_text("batches: [{name: x}]\n")
    assert cli.main(["backtest", "--config", str(config)]) == 1
    assert f"{config}:1:" in capsys.readouterr().err
    config.write_text("slack: {channel: '#a'}\nbatches: []\n")
    assert cli.main(["backtest", "--config", str(config), "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err
